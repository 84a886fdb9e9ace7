package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/**
 * Launches sampling_logprobs.cu: the log-probabilities a request with {@code logprobs} gets for each
 * drawn token (the chosen token's and the most likely ones'), computed where the logits are, as
 * {@code runner.Sampler.logSoftmax} and {@code Sampler.topLogprobs} compute them on the host.
 *
 * <p>{@link #top} runs before the draw rewrites the logits (mask, bias, penalties): each record's log
 * normalizer, its most likely tokens and a copy of its row; {@link #chosen} runs after the draw and adds
 * the drawn token's log-probability. Each record is {@link #RECORD_WORDS} 4-byte words: the log
 * normalizer (f64), the count of top tokens found (int32), the chosen log-probability (f32), then
 * {@link #MOST_TOP} ids (int32) and {@link #MOST_TOP} log-probabilities (f32).
 */
public final class LogprobsKernel {

    /** The most top tokens a record holds: OpenAI's largest top_logprobs (COIL_LOGPROB_MOST_TOP). */
    public static final int MOST_TOP = 20;

    /** 4-byte words of a record (COIL_LOGPROB_WORDS). */
    public static final int RECORD_WORDS = 4 + 2 * MOST_TOP;

    private static final int TOP_THREADS = 1024;
    private static final int CHOSEN_THREADS = 128;

    private final Kernel top;
    private final Kernel chosen;

    public LogprobsKernel(KernelModule module) {
        this.top = module.kernel("sampling_logprobs_top_f32");
        this.chosen = module.kernel("sampling_logprobs_chosen_f32");
    }

    /**
     * For each of {@code count} records: the log normalizer of logits row rows[i], its tops[i] (0 to
     * {@value #MOST_TOP}) most likely tokens, and the row copied to raw[i].
     *
     * @param logits (batch, vocab) f32, as the host would see them (divided by the model's divisor)
     * @param rows (count) int32 rows of logits
     * @param tops (count) int32
     * @param raw (count, vocab) f32 workspace, read by {@link #chosen}
     * @param records (count, {@value #RECORD_WORDS}) words
     */
    public void top(CudaStream stream, DeviceBuffer logits, int vocab, int count, DeviceBuffer rows, DeviceBuffer tops,
            DeviceBuffer raw, DeviceBuffer records) {
        RowKernels.requirePositive(vocab, "vocab");
        RowKernels.requireNonNegative(count, "count");
        rows.requireFloats(count, "rows");
        tops.requireFloats(count, "tops");
        raw.requireFloats((long) count * vocab, "raw");
        records.requireFloats((long) count * RECORD_WORDS, "records");
        if (count > 0) {
            top.launch(stream, count, 1, 1, TOP_THREADS, 0, logits, vocab, rows, tops, raw, records);
        }
    }

    /**
     * Sets each record's chosen log-probability from tokens[rows[i]] (int32, the step's drawn tokens by
     * row of logits) and the copy {@link #top} made; a token outside the vocabulary leaves NaN.
     */
    public void chosen(CudaStream stream, DeviceBuffer raw, int vocab, int count, DeviceBuffer rows,
            DeviceBuffer tokens, DeviceBuffer records) {
        raw.requireFloats((long) count * vocab, "raw");
        records.requireFloats((long) count * RECORD_WORDS, "records");
        if (count > 0) {
            chosen.launch(stream, Math.ceilDiv(count, CHOSEN_THREADS), 1, 1, CHOSEN_THREADS, 0, raw, vocab, count,
                    rows, tokens, records);
        }
    }
}
