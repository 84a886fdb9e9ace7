package dev.coil.engine.gpu;

import java.util.ArrayList;
import java.util.List;

/** Test buffers freed together: uploads, NaN-poisoned outputs, and downloads after the stream drains. */
public final class DeviceScope implements AutoCloseable {

    /**
     * The bits written into outputs before a kernel runs: a quiet NaN as one f32 and as each of its
     * two bf16 halves (Java's NaN, 0x7fc00000, would leave every other bf16 element +0.0), so an
     * element still NaN after a kernel, of either width, was never written.
     */
    public static final int POISON = 0x7fc07fc0;

    private final CudaDevice device;
    private final CudaStream stream;
    private final List<AutoCloseable> owned = new ArrayList<>();

    DeviceScope(CudaDevice device, CudaStream stream) {
        this.device = device;
        this.stream = stream;
    }

    public CudaStream stream() {
        return stream;
    }

    public DeviceBuffer upload(float[] values) {
        return keep(device.upload(values));
    }

    public DeviceBuffer upload(int[] values) {
        return keep(device.upload(values));
    }

    /** A buffer of {@code count} floats (or 2 · count bf16 values), every one NaN. */
    public DeviceBuffer poisoned(long count) {
        DeviceBuffer buffer = keep(device.allocateFloats(count));
        buffer.fill(POISON);
        return buffer;
    }

    public <T extends AutoCloseable> T keep(T resource) {
        owned.add(resource);
        return resource;
    }

    /** Waits for the stream, then copies the first {@code count} floats of {@code buffer} back. */
    public float[] download(DeviceBuffer buffer, int count) {
        stream.synchronize();
        float[] values = new float[count];
        buffer.copyTo(values);
        return values;
    }

    @Override
    public void close() {
        stream.synchronize();
        for (int i = owned.size() - 1; i >= 0; i--) {
            try {
                owned.get(i).close();
            } catch (Exception e) {
                throw new IllegalStateException("freeing a test buffer failed", e);
            }
        }
    }
}
