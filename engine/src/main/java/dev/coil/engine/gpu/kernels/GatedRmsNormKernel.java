package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/** Launches {@code gated_rms_norm_f32} (rms_norm.cu): the contract of {@code Ops.gatedRmsNorm}. */
public final class GatedRmsNormKernel {

    private final Kernel kernel;

    public GatedRmsNormKernel(KernelModule module) {
        this.kernel = RowKernels.programmatic(module.kernel("gated_rms_norm_f32"));
    }

    /**
     * g = y · silu(z), normalized over each contiguous group of {@code groupSize} channels (groupSize
     * == dim: the whole row), times weight. y, z, out: (tokens, dim) f32, out may be y; weight: (dim).
     */
    public void launch(CudaStream stream, DeviceBuffer y, DeviceBuffer z, int tokens, int dim, int groupSize,
            DeviceBuffer weight, float eps, DeviceBuffer out) {
        launch(stream, y, z, dim, tokens, dim, groupSize, weight, eps, out, DType.F32);
    }

    /**
     * As above, with z in rows of {@code zStride} floats (z read where in_proj wrote it) and out in
     * {@code outType}: F32, or BF16 (the f32 result rounded to nearest even).
     */
    public void launch(CudaStream stream, DeviceBuffer y, DeviceBuffer z, int zStride, int tokens, int dim,
            int groupSize, DeviceBuffer weight, float eps, DeviceBuffer out, DType outType) {
        RowKernels.requireNonNegative(tokens, "tokens");
        RowKernels.requirePositive(dim, "dim");
        RowKernels.requirePositive(groupSize, "groupSize");
        if (dim % groupSize != 0) {
            throw new IllegalArgumentException("dim (" + dim + ") must be a multiple of groupSize (" + groupSize + ")");
        }
        int groups = dim / groupSize;
        if (groups > 65535) {
            throw new IllegalArgumentException("at most 65535 norm groups per row are supported, not " + groups);
        }
        long elements = (long) tokens * dim;
        RowKernels.requireStride(zStride, dim, "zStride");
        y.requireFloats(elements, "y");
        z.requireFloats(RowKernels.spanned(tokens, dim, zStride), "z");
        RowKernels.requireOutput(out, elements, outType);
        weight.requireFloats(dim, "weight");
        if (tokens == 0) {
            return;
        }
        boolean bf16 = outType == DType.BF16;
        kernel.launch(stream, tokens, groups, 1, RowKernels.ROW_THREADS, 0, y, z, zStride, weight, bf16 ? null : out,
                bf16 ? out : null, dim, groupSize, eps);
    }
}
