package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/**
 * Launches argmax.cu: greedy decoding on the device, as {@code Sampler} picks, and the logits
 * divisor applied in place before the sampling kernels.
 */
public final class ArgmaxKernel {

    private static final int THREADS = 1024;

    private final Kernel kernel;
    private final Kernel divide;
    private final Kernel feed;

    public ArgmaxKernel(KernelModule module) {
        this.kernel = module.kernel("logits_argmax_f32").waitsForPreviousKernel();
        this.divide = module.kernel("logits_divide_f32");
        this.feed = module.kernel("feed_greedy_tokens");
    }

    /** x[i] /= divisor for i &lt; count, rounded as Java's float division. */
    public void divide(CudaStream stream, DeviceBuffer x, long count, float divisor) {
        x.requireFloats(count, "x");
        if (count > 0) {
            divide.launch(stream, Kernel.blocksFor(count, RowKernels.ELEMENT_THREADS), 1, 1,
                    RowKernels.ELEMENT_THREADS, 0, x, count, divisor);
        }
    }

    /**
     * out[r] = the lowest id of the largest value of logits row r, for r &lt; rows; -1 for a row
     * holding NaN or +infinity or only -infinity. logits: (rows, vocab) f32; out: (rows) int32.
     */
    public void launch(CudaStream stream, DeviceBuffer logits, int rows, int vocab, DeviceBuffer out) {
        RowKernels.requireNonNegative(rows, "rows");
        RowKernels.requirePositive(vocab, "vocab");
        logits.requireFloats((long) rows * vocab, "logits");
        out.requireBytes(4L * rows, "out");
        if (rows > 0) {
            kernel.launch(stream, rows, 1, 1, THREADS, 0, logits, vocab, out);
        }
    }

    /**
     * ids[pairs[2p]] = max(tokens[pairs[2p + 1]], 0) for p &lt; count: the greedy tokens of one step
     * (this kernel's {@link #launch} output) become ids of the next step on the device. tokens, pairs,
     * ids: int32.
     */
    public void feed(CudaStream stream, DeviceBuffer tokens, DeviceBuffer pairs, int count, DeviceBuffer ids) {
        RowKernels.requireNonNegative(count, "count");
        pairs.requireBytes(8L * count, "pairs");
        if (count > 0) {
            feed.launch(stream, Kernel.blocksFor(count, FEED_THREADS), 1, 1, FEED_THREADS, 0, tokens, pairs, count, ids);
        }
    }

    private static final int FEED_THREADS = 128;
}
