package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/** Launches {@code residual_add_f32} (residual_add.cu): h = h + mixer output · residual multiplier. */
public final class ResidualAddKernel {

    private final Kernel kernel;

    public ResidualAddKernel(KernelModule module) {
        this.kernel = RowKernels.programmatic(module.kernel("residual_add_f32"));
    }

    /** h[i] += update[i] · multiplier for i < count, rounded as Java rounds it. h, update: f32. */
    public void launch(CudaStream stream, DeviceBuffer h, DeviceBuffer update, long count, float multiplier) {
        h.requireFloats(count, "h");
        update.requireFloats(count, "update");
        if (count > 0) {
            kernel.launch(stream, Kernel.blocksFor(count, RowKernels.ELEMENT_THREADS), 1, 1,
                    RowKernels.ELEMENT_THREADS, 0, h, update, multiplier, count);
        }
    }
}
