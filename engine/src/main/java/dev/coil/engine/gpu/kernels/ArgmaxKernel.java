package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.gpu.PinnedBuffer;

/**
 * Launches argmax.cu: greedy decoding on the device, as {@code Sampler} picks, the logits
 * divisor applied in place before the sampling kernels, and a step's entry (its inputs from pinned
 * memory, the step before's tokens fed to its ids).
 */
public final class ArgmaxKernel {

    private static final int THREADS = 1024;

    private final Kernel kernel;
    private final Kernel divide;
    private final Kernel entry;

    public ArgmaxKernel(KernelModule module) {
        this.kernel = module.kernel("logits_argmax_f32").waitsForPreviousKernel();
        this.divide = module.kernel("logits_divide_f32");
        this.entry = module.kernel("step_entry");
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
     * A step's entry: inputs[i] = staged[i] for i &lt; count (staged: pinned host memory the kernel
     * reads over the bus), then ids[pairs[2p]] = max(tokens[pairs[2p + 1]], 0) for p &lt; pairCount,
     * pairs at inputs + pairsOffset and ids at inputs + idsOffset (ints): the greedy tokens of one
     * step (this kernel's {@link #launch} output) become ids of the next step on the device. tokens
     * may be null when pairCount is 0; count 0: the inputs are on the device already, only the feed.
     * inputs, tokens: int32.
     */
    public void enter(CudaStream stream, PinnedBuffer staged, int count, DeviceBuffer inputs, DeviceBuffer tokens,
            int pairsOffset, int pairCount, int idsOffset) {
        RowKernels.requireNonNegative(count, "count");
        RowKernels.requireNonNegative(pairCount, "pairCount");
        staged.checkRange(0, 4L * count);
        if (pairCount > 0 && (tokens == null || pairsOffset < 0)) {
            throw new IllegalArgumentException("the feed's " + pairCount + " pairs need the tokens they read, at an"
                    + " offset of at least 0, not " + pairsOffset);
        }
        inputs.requireBytes(4L * Math.max(count, pairsOffset + 2L * pairCount), "inputs");
        entry.launch(stream, 1, 1, 1, ENTRY_THREADS, 0, staged.address(), count, inputs, tokens, pairsOffset,
                pairCount, idsOffset);
    }

    private static final int ENTRY_THREADS = 256;
}
