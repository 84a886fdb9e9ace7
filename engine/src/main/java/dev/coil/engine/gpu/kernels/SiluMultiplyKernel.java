package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/** Launches {@code silu_multiply_f32} (activations.cu): the gated MLP's silu(gate) · up. */
public final class SiluMultiplyKernel {

    private final Kernel kernel;

    public SiluMultiplyKernel(KernelModule module) {
        this.kernel = RowKernels.programmatic(module.kernel("silu_multiply_f32"));
    }

    /**
     * out[t, i] = silu(gate[t, i]) · up[t, i]; gate and up in rows of gateStride and upStride floats,
     * out: (tokens, width).
     */
    public void launch(CudaStream stream, DeviceBuffer gate, int gateStride, DeviceBuffer up, int upStride,
            int tokens, int width, DeviceBuffer out) {
        launch(stream, gate, gateStride, up, upStride, tokens, width, out, DType.F32);
    }

    /** As above, with out in {@code outType}: F32, or BF16 (the f32 result rounded to nearest even). */
    public void launch(CudaStream stream, DeviceBuffer gate, int gateStride, DeviceBuffer up, int upStride,
            int tokens, int width, DeviceBuffer out, DType outType) {
        RowKernels.requireNonNegative(tokens, "tokens");
        RowKernels.requirePositive(width, "width");
        RowKernels.requireStride(gateStride, width, "gateStride");
        RowKernels.requireStride(upStride, width, "upStride");
        gate.requireFloats(RowKernels.spanned(tokens, width, gateStride), "gate");
        up.requireFloats(RowKernels.spanned(tokens, width, upStride), "up");
        RowKernels.requireOutput(out, (long) tokens * width, outType);
        long count = (long) tokens * width;
        if (count > 0) {
            boolean bf16 = outType == DType.BF16;
            // x over a row's width, y over the rows (silu_multiply_f32 strides past 65535 of them).
            kernel.launch(stream, Kernel.blocksFor(width, RowKernels.ELEMENT_THREADS), Math.min(tokens, 65535), 1,
                    RowKernels.ELEMENT_THREADS, 0, gate, up, bf16 ? null : out, bf16 ? out : null, tokens, width,
                    gateStride, upStride);
        }
    }

    /** Granite's stacked projection: rows of (gate | up), 2 · width floats each. out: (tokens, width). */
    public void launchStacked(CudaStream stream, DeviceBuffer gateAndUp, int tokens, int width, DeviceBuffer out) {
        launchStacked(stream, gateAndUp, tokens, width, out, DType.F32);
    }

    /** As above, with out in {@code outType}. */
    public void launchStacked(CudaStream stream, DeviceBuffer gateAndUp, int tokens, int width, DeviceBuffer out,
            DType outType) {
        RowKernels.requirePositive(width, "width");
        gateAndUp.requireFloats(2L * tokens * width, "gateAndUp");
        DeviceBuffer up = gateAndUp.floatSlice(width, gateAndUp.floats() - width);
        launch(stream, gateAndUp, 2 * width, up, 2 * width, tokens, width, out, outType);
    }
}
