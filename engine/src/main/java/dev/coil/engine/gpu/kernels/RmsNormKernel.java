package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/** Launches {@code rms_norm_f32} (rms_norm.cu): the contract of {@code Ops.rmsNorm} on device rows. */
public final class RmsNormKernel {

    private final Kernel kernel;
    private final Kernel afterResidual;

    public RmsNormKernel(KernelModule module) {
        this.kernel = RowKernels.programmatic(module.kernel("rms_norm_f32"));
        this.afterResidual = RowKernels.programmatic(module.kernel("residual_rms_norm_f32"));
    }

    /**
     * out[t, i] = weight[i] · x[t, i] / sqrt(mean_i(x[t, i]²) + eps).
     * x, out: (tokens, dim) f32, out may be x; weight: (dim) f32.
     */
    public void launch(CudaStream stream, DeviceBuffer x, int tokens, int dim, DeviceBuffer weight, float eps,
            DeviceBuffer out) {
        launch(stream, x, tokens, dim, weight, eps, out, DType.F32);
    }

    /** As above, with out in {@code outType}: F32, or BF16 (the f32 result rounded to nearest even). */
    public void launch(CudaStream stream, DeviceBuffer x, int tokens, int dim, DeviceBuffer weight, float eps,
            DeviceBuffer out, DType outType) {
        RowKernels.requireNonNegative(tokens, "tokens");
        RowKernels.requirePositive(dim, "dim");
        x.requireFloats((long) tokens * dim, "x");
        RowKernels.requireOutput(out, (long) tokens * dim, outType);
        weight.requireFloats(dim, "weight");
        if (tokens == 0) {
            return;
        }
        boolean bf16 = outType == DType.BF16;
        kernel.launch(stream, tokens, 1, 1, RowKernels.ROW_THREADS, 0, x, weight, bf16 ? null : out,
                bf16 ? out : null, dim, eps);
    }

    /**
     * The residual update h += update · multiplier (as {@link ResidualAddKernel}) and then this norm
     * of the new h (as {@link #launch}), in one launch: h, update: (tokens, dim) f32; out: (tokens,
     * dim) in {@code outType}, not overlapping h.
     */
    public void launchAfterResidual(CudaStream stream, DeviceBuffer h, DeviceBuffer update, float multiplier,
            int tokens, int dim, DeviceBuffer weight, float eps, DeviceBuffer out, DType outType) {
        RowKernels.requireNonNegative(tokens, "tokens");
        RowKernels.requirePositive(dim, "dim");
        h.requireFloats((long) tokens * dim, "h");
        update.requireFloats((long) tokens * dim, "update");
        RowKernels.requireOutput(out, (long) tokens * dim, outType);
        weight.requireFloats(dim, "weight");
        if (tokens == 0) {
            return;
        }
        boolean bf16 = outType == DType.BF16;
        afterResidual.launch(stream, tokens, 1, 1, RowKernels.ROW_THREADS, 0, h, update, multiplier, weight,
                bf16 ? null : out, bf16 ? out : null, dim, eps);
    }
}
