package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/**
 * Launches {@code routed_experts_norm_router_*} (routed_experts_router.cu): for a decode step's few
 * rows, the residual update and the RMSNorm before a block with routed experts, and the router's
 * scores, in one launch. The normed rows are {@link RmsNormKernel#launchAfterResidual}'s bit for bit;
 * the scores are their f32 product with the router's rows. The launch loads the router's rows and the
 * norm's weights before it waits for the kernel before it on the device, and lets the next start
 * after its wait.
 */
public final class ExpertsRouterKernel {

    /** The most dynamic shared memory a launch takes without asking: rows · hidden floats. */
    private static final long SHARED_BYTES = 48 * 1024;
    private static final int WARPS = 8;

    private final Kernel bf16;
    private final Kernel f32;

    public ExpertsRouterKernel(KernelModule module) {
        this.bf16 = module.kernel("routed_experts_norm_router_bf16").waitsForPreviousKernel();
        this.f32 = module.kernel("routed_experts_norm_router_f32").waitsForPreviousKernel();
    }

    /** True when one launch holds {@code rows} normed rows of {@code hidden} values. */
    public static boolean supports(int rows, int hidden) {
        return rows > 0 && hidden > 0 && 4L * rows * hidden <= SHARED_BYTES;
    }

    /**
     * v = h + update · multiplier (h alone when update is null) into hOut; normed = normWeight · v /
     * sqrt(mean(v²) + eps) into normed; scores = normed · routerᵀ.
     *
     * @param h (rows, hidden) f32, read only
     * @param update (rows, hidden) f32, or null
     * @param hOut (rows, hidden) f32, the updated residual stream; not h
     * @param normed (rows, hidden) f32
     * @param router (E, hidden) BF16 or F32
     * @param scores (rows, E) f32
     */
    public void launch(CudaStream stream, DeviceBuffer h, DeviceBuffer update, float multiplier,
            DeviceBuffer normWeight, float eps, int rows, int hidden, DeviceBuffer hOut, DeviceBuffer normed,
            DeviceMatrix router, DeviceBuffer scores) {
        if (!supports(rows, hidden)) {
            throw new IllegalArgumentException(rows + " rows of " + hidden + " values do not fit one launch's "
                    + SHARED_BYTES + " bytes of shared memory");
        }
        if (router.cols() != hidden) {
            throw new IllegalArgumentException("router [" + router.rows() + ", " + router.cols() + "] for hidden "
                    + hidden);
        }
        if (router.dtype() != DType.BF16 && router.dtype() != DType.F32) {
            throw new IllegalArgumentException("router weights in " + router.dtype() + ": BF16 or F32");
        }
        if (hOut.address() == h.address()) {
            throw new IllegalArgumentException("hOut must not be h: the other blocks still read h");
        }
        long values = (long) rows * hidden;
        h.requireFloats(values, "h");
        if (update != null) {
            update.requireFloats(values, "update");
        }
        hOut.requireFloats(values, "hOut");
        normed.requireFloats(values, "normed");
        normWeight.requireFloats(hidden, "normWeight");
        int experts = router.rows();
        RoutedExpertsKernel.requireExperts(experts);
        scores.requireFloats((long) rows * experts, "scores");
        (router.dtype() == DType.BF16 ? bf16 : f32).launch(stream, Kernel.blocksFor(experts, WARPS), 1, 1,
                32 * WARPS, (int) (4L * rows * hidden), h, update, multiplier, normWeight, eps, rows, hidden, hOut,
                normed, router.data(), experts, scores);
    }
}
