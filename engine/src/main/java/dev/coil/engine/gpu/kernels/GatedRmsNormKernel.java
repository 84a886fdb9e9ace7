package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/** Launches {@code gated_rms_norm_f32} (rms_norm.cu): the contract of {@code Ops.gatedRmsNorm}. */
public final class GatedRmsNormKernel {

    private final Kernel kernel;

    public GatedRmsNormKernel(KernelModule module) {
        this.kernel = module.kernel("gated_rms_norm_f32");
    }

    /**
     * g = y · silu(z), normalized over each contiguous group of {@code groupSize} channels (groupSize
     * == dim: the whole row), times weight. y, z, out: (tokens, dim) f32, out may be y; weight: (dim).
     */
    public void launch(CudaStream stream, DeviceBuffer y, DeviceBuffer z, int tokens, int dim, int groupSize,
            DeviceBuffer weight, float eps, DeviceBuffer out) {
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
        y.requireFloats(elements, "y");
        z.requireFloats(elements, "z");
        out.requireFloats(elements, "out");
        weight.requireFloats(dim, "weight");
        if (tokens == 0) {
            return;
        }
        kernel.launch(stream, tokens, groups, 1, RowKernels.ROW_THREADS, 0, y, z, weight, out, dim, groupSize, eps);
    }
}
