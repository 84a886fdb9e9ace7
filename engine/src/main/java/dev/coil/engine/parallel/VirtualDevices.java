package dev.coil.engine.parallel;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.ops.Ops;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * N devices made of CPU threads, so that context parallelism runs (and is tested) without GPUs.
 * Each device has a compute thread, its own ops (with their own workspaces and worker threads) and
 * an outgoing link: a second thread that copies a buffer to the next device while the compute
 * thread works, as a GPU's copy engine overlaps a peer-to-peer transfer with its kernels. Buffers
 * are never shared between devices: data moves only by copies on the links.
 *
 * <p>The coordinator drives the devices in steps: {@link #forEach} runs one body on every device
 * at once and returns when all are done, so a step's results are visible to the next.
 */
public final class VirtualDevices implements AutoCloseable {

    /** The work of one device in a step. */
    @FunctionalInterface
    public interface DeviceTask {
        void run(int device) throws Exception;
    }

    private final List<Ops> ops;
    private final List<Parallel> parallels;
    private final ExecutorService[] compute;
    private final ExecutorService[] links;

    private VirtualDevices(int count, int threadsPerDevice) {
        if (count < 1) {
            throw new IllegalArgumentException("--devices cpu:N needs N of at least 1, got " + count);
        }
        this.ops = new ArrayList<>();
        this.parallels = new ArrayList<>();
        this.compute = new ExecutorService[count];
        this.links = new ExecutorService[count];
        for (int device = 0; device < count; device++) {
            Parallel parallel = new Parallel(threadsPerDevice);
            parallels.add(parallel);
            ops.add(new CpuOps(parallel));
            compute[device] = Executors.newSingleThreadExecutor(
                    Thread.ofPlatform().daemon().name("coil-device-" + device).factory());
            links[device] = Executors.newSingleThreadExecutor(
                    Thread.ofPlatform().daemon().name("coil-link-" + device).factory());
        }
    }

    /**
     * {@code count} virtual CPU devices of {@code threadsPerDevice} threads each. Their worker
     * threads live as long as the process (as {@link Parallel}'s do): make them once and reuse them.
     */
    public static VirtualDevices cpu(int count, int threadsPerDevice) {
        return new VirtualDevices(count, threadsPerDevice);
    }

    public int count() {
        return compute.length;
    }

    /** The ops of {@code device}; call them only from that device's thread. */
    public Ops ops(int device) {
        return ops.get(device);
    }

    /** The thread pool of {@code device}'s ops, for kernels of this package. */
    public Parallel parallel(int device) {
        return parallels.get(device);
    }

    /** The device after {@code device} on the ring. */
    public int next(int device) {
        return (device + 1) % count();
    }

    /** Runs {@code task} on every device concurrently; returns when all have finished, rethrowing the first failure. */
    public void forEach(DeviceTask task) {
        List<Future<?>> running = new ArrayList<>(count());
        for (int device = 0; device < count(); device++) {
            int d = device;
            running.add(compute[d].submit(() -> {
                task.run(d);
                return null;
            }));
        }
        awaitAll(running);
    }

    /** Runs {@code task} on one device and returns its result. */
    public <T> T on(int device, Callable<T> task) {
        return await(compute[device].submit(task));
    }

    /**
     * Starts a copy from {@code device} to the next device on its outgoing link, returning at once;
     * the device waits for the returned future before it touches the source or the target again.
     */
    public Future<?> send(int device, Runnable copy) {
        return links[device].submit(copy);
    }

    /** Waits for a transfer or a task, rethrowing what it threw. */
    public static <T> T await(Future<T> future) {
        try {
            return future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a virtual device", e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException runtime) {
                throw runtime;
            }
            if (cause instanceof Error error) {
                throw error;
            }
            throw new IllegalStateException("a virtual device failed: " + cause, cause);
        }
    }

    private static void awaitAll(List<Future<?>> futures) {
        RuntimeException first = null;
        for (Future<?> future : futures) {
            try {
                await(future);
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public void close() {
        for (int device = 0; device < count(); device++) {
            compute[device].shutdown();
            links[device].shutdown();
        }
    }
}
