package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaException;
import dev.coil.engine.gpu.DeviceBuffer;
import java.util.HashMap;
import java.util.Map;

/**
 * Named device buffers for one forward's activations, kept between forwards and grown on demand,
 * so decode steps allocate nothing. Growing waits for queued work before freeing the old buffer, and
 * every growth makes the captured decode graphs stale ({@link #allocations}), so a buffer grows by
 * at least {@link #GROWTH_PROPERTY}'s factor: a length that grows a little at a time (the keys of a
 * chat's turns) then regrows its buffers a logarithmic number of times rather than at every turn.
 */
final class Scratch implements AutoCloseable {

    /**
     * System property: the least factor a buffer grows by when it must grow (default 1.5); 1 gives
     * every growth the exact size asked for. A first allocation is always the exact size.
     */
    static final String GROWTH_PROPERTY = "coil.cuda.scratchGrowth";

    private final CudaDevice device;
    private final double growth;
    private final Map<String, DeviceBuffer> buffers = new HashMap<>();
    private long allocations;

    Scratch(CudaDevice device) {
        this.device = device;
        this.growth = Math.max(1, Double.parseDouble(System.getProperty(GROWTH_PROPERTY, "1.5")));
    }

    /** At least {@code floats} 4-byte elements under {@code name}, as a view of exactly that many. */
    DeviceBuffer floats(String name, long floats) {
        return bytes(name, 4 * floats);
    }

    DeviceBuffer bytes(String name, long bytes) {
        DeviceBuffer buffer = buffers.get(name);
        if (buffer == null || buffer.bytes() < bytes) {
            long wanted = Math.max(bytes, 256);
            long size = wanted;
            if (buffer != null) {
                size = Math.max(wanted, (long) Math.ceil(buffer.bytes() * growth));
                device.synchronize();
                buffer.close();
                buffers.remove(name);
            }
            buffer = allocate(size, wanted);
            allocations++;
            buffers.put(name, buffer);
        }
        return buffer.slice(0, Math.max(bytes, 0));
    }

    /** {@code size} bytes, or only the {@code wanted} ones where the device has no room for more. */
    private DeviceBuffer allocate(long size, long wanted) {
        if (size > wanted) {
            try {
                return device.allocate(size);
            } catch (CudaException outOfRoom) {
                // The margin is an optimisation: fall back to the exact size (which may fail in turn).
            }
        }
        return device.allocate(wanted);
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
