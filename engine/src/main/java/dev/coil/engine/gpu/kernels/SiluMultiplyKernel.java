package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/** Launches {@code silu_multiply_f32} (activations.cu): the gated MLP's silu(gate) · up. */
public final class SiluMultiplyKernel {

    private final Kernel kernel;

    public SiluMultiplyKernel(KernelModule module) {
        this.kernel = module.kernel("silu_multiply_f32");
    }

    /**
     * out[t, i] = silu(gate[t, i]) · up[t, i]; gate and up in rows of gateStride and upStride floats,
     * out: (tokens, width).
     */
    public void launch(CudaStream stream, DeviceBuffer gate, int gateStride, DeviceBuffer up, int upStride,
            int tokens, int width, DeviceBuffer out) {
        RowKernels.requireNonNegative(tokens, "tokens");
        RowKernels.requirePositive(width, "width");
        RowKernels.requireStride(gateStride, width, "gateStride");
        RowKernels.requireStride(upStride, width, "upStride");
        gate.requireFloats(RowKernels.spanned(tokens, width, gateStride), "gate");
        up.requireFloats(RowKernels.spanned(tokens, width, upStride), "up");
        out.requireFloats((long) tokens * width, "out");
        long count = (long) tokens * width;
        if (count > 0) {
            kernel.launch(stream, Kernel.blocksFor(count, RowKernels.ELEMENT_THREADS), 1, 1,
                    RowKernels.ELEMENT_THREADS, 0, gate, up, out, tokens, width, gateStride, upStride);
        }
    }

    /** Granite's stacked projection: rows of (gate | up), 2 · width floats each. out: (tokens, width). */
    public void launchStacked(CudaStream stream, DeviceBuffer gateAndUp, int tokens, int width, DeviceBuffer out) {
        RowKernels.requirePositive(width, "width");
        gateAndUp.requireFloats(2L * tokens * width, "gateAndUp");
        DeviceBuffer up = gateAndUp.floatSlice(width, gateAndUp.floats() - width);
        launch(stream, gateAndUp, 2 * width, up, 2 * width, tokens, width, out);
    }
}
