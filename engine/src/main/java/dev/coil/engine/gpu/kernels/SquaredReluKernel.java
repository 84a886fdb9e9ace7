package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/** Launches {@code squared_relu_f32} (activations.cu): NemotronH's MLP activation max(x, 0)². */
public final class SquaredReluKernel {

    private final Kernel kernel;

    public SquaredReluKernel(KernelModule module) {
        this.kernel = RowKernels.programmatic(module.kernel("squared_relu_f32"));
    }

    /** out[i] = max(x[i], 0)² for i < count; out may be x. */
    public void launch(CudaStream stream, DeviceBuffer x, long count, DeviceBuffer out) {
        x.requireFloats(count, "x");
        out.requireFloats(count, "out");
        if (count > 0) {
            kernel.launch(stream, Kernel.blocksFor(count, RowKernels.ELEMENT_THREADS), 1, 1,
                    RowKernels.ELEMENT_THREADS, 0, x, out, count);
        }
    }
}
