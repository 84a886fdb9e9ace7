package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.DeviceBuffer;
import java.util.HashMap;
import java.util.Map;

/**
 * Named device buffers for one forward's activations, kept between forwards and grown on demand,
 * so decode steps allocate nothing. Growing waits for queued work before freeing the old buffer.
 */
final class Scratch implements AutoCloseable {

    private final CudaDevice device;
    private final Map<String, DeviceBuffer> buffers = new HashMap<>();
    private long allocations;

    Scratch(CudaDevice device) {
        this.device = device;
    }

    /** At least {@code floats} 4-byte elements under {@code name}, as a view of exactly that many. */
    DeviceBuffer floats(String name, long floats) {
        return bytes(name, 4 * floats);
    }

    DeviceBuffer bytes(String name, long bytes) {
        DeviceBuffer buffer = buffers.get(name);
        if (buffer == null || buffer.bytes() < bytes) {
            if (buffer != null) {
                device.synchronize();
                buffer.close();
            }
            buffer = device.allocate(Math.max(bytes, 256));
            allocations++;
            buffers.put(name, buffer);
        }
        return buffer.slice(0, Math.max(bytes, 0));
    }

    /** How many buffers were allocated so far: a captured graph is valid while this stays unchanged. */
    long allocations() {
        return allocations;
    }

    @Override
    public void close() {
        buffers.values().forEach(DeviceBuffer::close);
        buffers.clear();
    }
}
