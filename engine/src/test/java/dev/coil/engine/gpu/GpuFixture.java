package dev.coil.engine.gpu;

/**
 * The device every GPU test shares: cuda:0, opened once per JVM with its kernels and one stream,
 * never closed (the process exit releases it). Opening fails the calling test with the reason
 * ("no CUDA device found", "the GPU kernels were not built into this jar") every time it is asked.
 */
public final class GpuFixture {

    private static CudaDevice device;
    private static CudaStream stream;
    private static RuntimeException failure;

    private GpuFixture() {}

    public static synchronized CudaDevice device() {
        if (failure != null) {
            throw new AssertionError("the GPU tests need a CUDA device: " + failure.getMessage(), failure);
        }
        if (device == null) {
            try {
                device = CudaDevice.open(0);
                device.kernels();
                stream = device.newStream();
                System.out.println("[gpu] " + device.description() + ", driver CUDA " + CudaDevice.driverVersion());
            } catch (RuntimeException e) {
                failure = e;
                throw new AssertionError("the GPU tests need a CUDA device: " + e.getMessage(), e);
            }
        }
        device.makeCurrent();
        return device;
    }

    public static KernelModule kernels() {
        return device().kernels();
    }

    public static synchronized CudaStream stream() {
        device();
        return stream;
    }

    /** A scope whose buffers are freed together at its end. */
    public static DeviceScope scope() {
        return new DeviceScope(device(), stream());
    }
}
