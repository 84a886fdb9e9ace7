package dev.coil.engine.runner;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.load.WeightStorage;
import java.util.stream.IntStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Opens the {@link Backend} that {@code --devices} names, resolving {@code auto}. */
public final class Backends {

    private static final Logger LOG = LoggerFactory.getLogger(Backends.class);

    /** System property turning CUDA graphs for decode steps off ({@code -Dcoil.cuda.graphs=false}). */
    public static final String GRAPHS_PROPERTY = "coil.cuda.graphs";

    private Backends() {
    }

    /**
     * auto → every GPU the driver reports when the jar carries the kernels (cuda:0 runs the batched
     * steps; with several, a context too long for one is sharded over all of them), else cpu; the
     * choice and its reason are logged once. Other values are returned as they are.
     */
    public static Devices resolve(Devices devices) {
        if (devices.kind() != Devices.Kind.AUTO) {
            return devices;
        }
        String reason = cudaUnavailableReason();
        if (reason == null) {
            int count = CudaDevice.count();
            if (count == 1) {
                LOG.info("--devices auto: using cuda:0");
                return Devices.cuda(0);
            }
            Devices all = new Devices(Devices.Kind.CUDA, IntStream.range(0, count).boxed().toList());
            LOG.info("--devices auto: using {} (batched steps on cuda:0; context parallelism over all {})", all,
                    count);
            return all;
        }
        LOG.info("--devices auto: using the CPU ({})", reason);
        return Devices.cpu(1);
    }

    /**
     * The step budget (--max-batched-tokens) where none is given: the engine's 1024 on the CPU; on a
     * GPU, as vLLM's server picks, 8192 tokens on a card of at least 70 GiB and 2048 on a smaller
     * one, so that a long prompt prefills in a few large steps.
     */
    public static int defaultMaxBatchedTokens(Devices devices) {
        Devices resolved = resolve(devices);
        if (!resolved.isCuda()) {
            return EngineOptions.DEFAULTS.maxBatchedTokens();
        }
        return gpuMaxBatchedTokens(CudaDevice.totalMemory(resolved.ordinals().get(0)));
    }

    /**
     * Where the weights of a model run on {@code devices} (resolved) are best kept: a GPU uploads
     * them once, so mapped; the CPU streams them every decode step, so in memory on huge pages,
     * unless {@code mapped} (--mmap) asks otherwise.
     */
    public static WeightStorage weightStorage(Devices devices, boolean mapped) {
        return devices.isCuda() || mapped ? WeightStorage.MAPPED : WeightStorage.MEMORY;
    }

    /** Positions between a GPU's prefill snapshots by default (see {@link #defaultSnapshotIntervalBlocks}). */
    static final int GPU_SNAPSHOT_POSITIONS = 1024;

    /**
     * The Mamba state snapshots' spacing during prefill (--snapshot-interval) where none is given:
     * the engine's 16 blocks on the CPU; on a GPU, 1024 positions' worth of blocks. A snapshot ends
     * a prompt chunk, so crossing one costs a prompt step more: on the CPU little beside the
     * chunk's compute, on a GPU about as much as recomputing a thousand positions (3-4 ms on an H100),
     * which a hit on a shorter prefix would not win back.
     */
    public static int defaultSnapshotIntervalBlocks(Devices devices, int blockSize) {
        return resolve(devices).isCuda() ? gpuSnapshotIntervalBlocks(blockSize)
                : EngineOptions.DEFAULTS.snapshotIntervalBlocks();
    }

    /** The GPU's default snapshot spacing in blocks of {@code blockSize} positions. */
    static int gpuSnapshotIntervalBlocks(int blockSize) {
        return Math.max(1, GPU_SNAPSHOT_POSITIONS / blockSize);
    }

    /** The GPU's default step budget for a card of {@code memoryBytes}. */
    static int gpuMaxBatchedTokens(long memoryBytes) {
        return memoryBytes >= 70L << 30 ? 8192 : 2048;
    }

    /** Opens the backend for {@code devices} (auto resolved first); threads: CPU worker threads. */
    public static Backend open(Devices devices, LoadedModel loaded, int threads) {
        return open(devices, loaded, threads, ScanPrecision.F32);
    }

    /**
     * As above, a GPU's prompt steps scanning with {@code scanPrecision}; on the CPU, which always
     * scans in f32, any other precision is logged and left unused.
     */
    public static Backend open(Devices devices, LoadedModel loaded, int threads, ScanPrecision scanPrecision) {
        return open(devices, loaded, threads, scanPrecision, false);
    }

    /**
     * As above; {@code batchInvariant} ({@code --batch-invariant}): kernels that compute each row the
     * same way whatever rows share a step (on a GPU, DeviceKernels's list; on the CPU, the products).
     */
    public static Backend open(Devices devices, LoadedModel loaded, int threads, ScanPrecision scanPrecision,
            boolean batchInvariant) {
        Devices resolved = resolve(devices);
        if (resolved.isCuda()) {
            if (resolved.count() > 1) {
                LOG.info("{} devices given: the serving engine runs on {} (several GPUs serve one request's context"
                        + " only through context parallelism)", resolved.count(), "cuda:" + resolved.ordinals().get(0));
            }
            if (!KernelModule.isBuilt()) {
                throw new IllegalArgumentException("--devices " + resolved + ": this build carries no CUDA kernels"
                        + " (nvcc was not found when it was built); rebuild with nvcc on the PATH or use --devices cpu");
            }
            boolean graphs = !"false".equalsIgnoreCase(System.getProperty(GRAPHS_PROPERTY, "true"));
            return GpuBackend.open(loaded, resolved.ordinals().get(0), graphs, scanPrecision.kernelPrecision(),
                    batchInvariant);
        }
        warnIfUnused(scanPrecision, resolved);
        return new CpuBackend(loaded.model(), new CpuOps(new Parallel(threads), batchInvariant));
    }

    /** Logs that --ssd-precision has no effect on {@code devices} when they are CPU devices and it is not f32. */
    public static void warnIfUnused(ScanPrecision scanPrecision, Devices devices) {
        if (scanPrecision != ScanPrecision.F32 && !devices.isCuda()) {
            LOG.warn("--ssd-precision {} applies to CUDA devices; {} scans in f32", scanPrecision, devices);
        }
    }

    /** Null when CUDA can be used, else why not. */
    private static String cudaUnavailableReason() {
        if (!KernelModule.isBuilt()) {
            return "this build carries no CUDA kernels";
        }
        try {
            return CudaDevice.count() > 0 ? null : "the CUDA driver reports no GPU";
        } catch (RuntimeException | LinkageError e) {
            return "no CUDA driver: " + e.getMessage();
        }
    }
}
