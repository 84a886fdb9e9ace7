package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/**
 * Launches lm_head_argmax.cu: the end of a one-row decode step in one launch (the last residual
 * update and the final norm, the logits, the greedy token), equal bit for bit to
 * {@link GemvKernel#projectResidualNorm} of lm_head followed by {@link ArgmaxKernel#launch}. One
 * block a multiprocessor loops over lm_head's rows, 16 at a time, each tile a bulk copy into a
 * ring of shared memory kept several tiles ahead, so the weights stream without a pause; the last
 * block to finish reduces the blocks' best logits. This launcher owns those bests and the
 * count of finished blocks (zero between launches: the last block sets it back), so its launches
 * must run one after another, as they do on a step's stream.
 *
 * <p>{@code -Dcoil.cuda.lmHeadArgmax=false} leaves the two launches it replaces.
 */
public final class LmHeadArgmaxKernel implements AutoCloseable {

    public static final String PROPERTY = "coil.cuda.lmHeadArgmax";

    private static final int THREADS = 256;
    /** lm_head rows a block sums at a time (one bulk copy): 8 warps of two. */
    private static final int TILE = 16;
    /** Tiles a block keeps asked for ahead of the one it sums (COIL_LM_HEAD_MAX_STAGES caps it at 8). */
    private static final int STAGES = 6;
    /** Shared memory a block takes at most: the ring and the operand (an H100 gives a block 227 KB). */
    private static final int MAX_SHARED_BYTES = 200 * 1024;

    private final Kernel kernel;
    private final int maxBlocks;
    private final boolean available;
    /** (value bits, id, bad) a block. */
    private final DeviceBuffer partials;
    private final DeviceBuffer arrivals;

    public LmHeadArgmaxKernel(KernelModule module, CudaDevice device) {
        this.kernel = module.kernel("lm_head_argmax_bf16").waitsForPreviousKernel();
        this.maxBlocks = device.multiprocessors();
        // Bulk copies into shared memory are sm_90's.
        this.available = device.computeCapability() >= 90
                && !"false".equalsIgnoreCase(System.getProperty(PROPERTY, "true"));
        if (available) {
            kernel.allowDynamicSharedBytes(MAX_SHARED_BYTES);
        }
        this.partials = device.allocate(12L * maxBlocks);
        this.arrivals = device.allocate(4);
        arrivals.fill(0);
    }

    /** Ring slots for rows of {@code hidden} columns: up to STAGES, as many as the shared memory holds. */
    private static int stages(int hidden) {
        return Math.min(STAGES, (MAX_SHARED_BYTES - 2 * hidden) / (2 * TILE * hidden));
    }

    /**
     * True when it takes {@code rows} rows of lm_head: one row, bf16 weights with a multiple of 8
     * columns and at least two tiles of them fitting the ring, on sm_90, not switched off.
     */
    public boolean supports(int rows, DeviceMatrix lmHead) {
        return available && rows == 1 && lmHead.dtype() == DType.BF16 && lmHead.cols() % 8 == 0
                && stages(lmHead.cols()) >= 2;
    }

    /**
     * logits = lm_head · (weight · v / rms(v)), v = h + update · multiplier (update may be null);
     * token[0] = the lowest id of the largest logit, or -1 when a logit is NaN or +infinity or all
     * are -infinity. h, update: (hidden) f32; logits: (vocab) f32; token: one int32. The norm must
     * not write the residual stream back (hOut null).
     */
    public void launch(CudaStream stream, GemvKernel.ResidualNorm norm, DeviceMatrix lmHead, DeviceBuffer logits,
            DeviceBuffer token) {
        launch(stream, norm, lmHead, logits, token, null);
    }

    /**
     * As above, and where {@code tokenHost} (8 bytes on the device, or null) holds the address of a
     * pinned host int (not 0), the token is written there too: a step's inputs name where its host
     * reads the token, so that no copy follows the step.
     */
    public void launch(CudaStream stream, GemvKernel.ResidualNorm norm, DeviceMatrix lmHead, DeviceBuffer logits,
            DeviceBuffer token, DeviceBuffer tokenHost) {
        if (!supports(1, lmHead)) {
            throw new IllegalArgumentException("lm_head_argmax does not take " + lmHead.dtype() + " [" + lmHead.rows()
                    + ", " + lmHead.cols() + "] here (it needs sm_90 and is switched off by -D" + PROPERTY + "=false)");
        }
        if (norm.hOut() != null) {
            throw new IllegalArgumentException("lm_head_argmax does not write the residual stream back");
        }
        int hidden = lmHead.cols();
        int vocab = lmHead.rows();
        norm.h().requireFloats(hidden, "h");
        if (norm.update() != null) {
            norm.update().requireFloats(hidden, "update");
        }
        norm.weight().requireFloats(hidden, "norm weight");
        logits.requireFloats(vocab, "logits");
        token.requireBytes(4, "token");
        if (tokenHost != null) {
            tokenHost.requireBytes(8, "token host address");
        }
        int blocks = Math.min(maxBlocks, Math.ceilDiv(vocab, TILE));
        int stages = stages(hidden);
        kernel.launch(stream, blocks, 1, 1, THREADS, stages * 2 * TILE * hidden + 2 * hidden, norm.h(), norm.update(),
                norm.multiplier(), norm.weight(), norm.eps(), lmHead.data(), hidden, vocab, stages, logits, token,
                tokenHost, partials, arrivals);
    }

    @Override
    public void close() {
        partials.close();
        arrivals.close();
    }
}
