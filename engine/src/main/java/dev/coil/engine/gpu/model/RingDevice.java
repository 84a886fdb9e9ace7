package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.ContextParallelKernels;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One GPU of a sharded sequence's ring: the model's weights, a compute stream with its kernels and
 * scratch, a copy stream on which K/V blocks from peers arrive while the compute stream works, and
 * named events through which the GPUs wait for each other's data without the host.
 *
 * <p>Two ring devices may sit on one physical GPU (tests run the whole ring on one card): they then
 * have separate streams, scratch and buffers, and their copies are device-local.
 */
final class RingDevice implements AutoCloseable {

    final int index;
    final CudaDevice device;
    final DeviceKernels kernels;
    final ContextParallelKernels parallel;
    final GpuWeights weights;
    final CudaStream copies;
    private final boolean ownsWeights;
    private final Map<String, CudaEvent> events = new HashMap<>();
    private final List<CudaEvent> timed = new ArrayList<>();

    RingDevice(int index, CudaDevice device, GpuWeights weights, boolean ownsWeights,
            SsdScanKernel.Precision scanPrecision) {
        this.index = index;
        this.device = device;
        this.weights = weights;
        this.ownsWeights = ownsWeights;
        device.makeCurrent();
        this.kernels = new DeviceKernels(device, device.newStream(), scanPrecision);
        this.parallel = new ContextParallelKernels(device.kernels());
        this.copies = device.newStream();
    }

    /** Makes this device current on the calling thread: every launch and allocation below goes to it. */
    void use() {
        device.makeCurrent();
    }

    CudaStream stream() {
        return kernels.stream;
    }

    /** The named event, recorded now at the end of {@code stream} (this device's compute or copy stream). */
    CudaEvent mark(String name, CudaStream stream) {
        CudaEvent event = events.computeIfAbsent(name, unused -> device.newEvent());
        event.record(stream);
        return event;
    }

    /** The named event as last recorded (by {@link #mark}). */
    CudaEvent event(String name) {
        CudaEvent event = events.get(name);
        if (event == null) {
            throw new IllegalStateException("event " + name + " was never recorded on ring device " + index);
        }
        return event;
    }

    /** The named event recorded at the end of the compute stream. */
    CudaEvent mark(String name) {
        return mark(name, kernels.stream);
    }

    /** A fresh event recorded now on {@code stream}, kept for timing until {@link #clearTimings}. */
    CudaEvent stamp(CudaStream stream) {
        CudaEvent event = device.newEvent();
        event.record(stream);
        timed.add(event);
        return event;
    }

    void clearTimings() {
        timed.forEach(CudaEvent::close);
        timed.clear();
    }

    /**
     * Queues on {@code stream} (one of this device's) a copy of {@code bytes} from {@code from} on
     * {@code source} into {@code into} here, once {@code ready} (recorded by the source) is reached.
     */
    void pull(CudaStream stream, DeviceBuffer into, RingDevice source, DeviceBuffer from, long bytes, CudaEvent ready) {
        if (ready != null) {
            stream.waitFor(ready);
        }
        CudaDevice.copyPeerAsync(into, device, from, source.device, bytes, stream);
    }

    /** Device memory, zeroed, that outlives the step's scratch (a sequence's shards and outboxes). */
    DeviceBuffer allocateZeroed(long bytes) {
        use();
        DeviceBuffer buffer = device.allocate(Math.max(bytes, 256));
        buffer.fill(0);
        return buffer;
    }

    @Override
    public void close() {
        use();
        device.synchronize();
        clearTimings();
        events.values().forEach(CudaEvent::close);
        events.clear();
        copies.close();
        kernels.close();
        kernels.stream.close();
        if (ownsWeights) {
            weights.close();
        }
    }
}
