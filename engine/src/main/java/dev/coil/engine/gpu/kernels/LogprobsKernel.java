package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Launches sampling_logprobs.cu: the log-probabilities a request with {@code logprobs} gets for each
 * drawn token (the chosen token's and the most likely ones'), computed where the logits are, as
 * {@code runner.Sampler.logSoftmax} and {@code Sampler.topLogprobs} compute them on the host.
 *
 * <p>{@link #top} runs before the draw rewrites the logits (mask, bias, penalties): each record's log
 * normalizer, its most likely tokens and a copy of its row; {@link #chosen} runs after the draw and adds
 * the drawn token's log-probability. For a prompt's rows (prompt logprobs), {@link #top} without the copy
 * and then {@link #prompt} give each row the log-probability and rank of the prompt token after it, so
 * that a prompt's logits need not come back to the host. Each record is {@link #RECORD_WORDS} 4-byte words: the log
 * normalizer (f64), the count of top tokens found (int32), the chosen log-probability (f32), then
 * {@link #MOST_TOP} ids (int32) and {@link #MOST_TOP} log-probabilities (f32).
 *
 * <p>On sm_90 {@link #top} splits a row over a thread-block cluster of up to {@value
 * #MOST_BLOCKS_PER_ROW} blocks where the batch leaves multiprocessors idle; its sum is in fixed point,
 * so a record does not depend on how many blocks took its row.
 */
public final class LogprobsKernel {

    /** The most top tokens a record holds: OpenAI's largest top_logprobs (COIL_LOGPROB_MOST_TOP). */
    public static final int MOST_TOP = 20;

    /** 4-byte words of a record (COIL_LOGPROB_WORDS). */
    public static final int RECORD_WORDS = 4 + 2 * MOST_TOP;

    /** A record as the host reads it: the chosen token's log-probability and the top tokens found. */
    public record Record(float chosen, int[] topIds, float[] topLogprobs) {
    }

    /** Record {@code index} of {@code records} (host memory the records were copied or written to). */
    public static Record read(MemorySegment records, int index) {
        long at = 4L * RECORD_WORDS * index;
        int found = records.get(ValueLayout.JAVA_INT, at + 8);
        if (found < 0 || found > MOST_TOP) {
            throw new IllegalStateException("a logprobs record says it holds " + found + " tokens");
        }
        int[] ids = new int[found];
        float[] values = new float[found];
        for (int i = 0; i < found; i++) {
            ids[i] = records.get(ValueLayout.JAVA_INT, at + 4L * (4 + i));
            values[i] = records.get(ValueLayout.JAVA_FLOAT, at + 4L * (4 + MOST_TOP + i));
        }
        return new Record(records.get(ValueLayout.JAVA_FLOAT, at + 12), ids, values);
    }

    /** The most blocks that take one row together by default: the largest portable thread-block cluster. */
    public static final int MOST_BLOCKS_PER_ROW = RowClusters.MOST_BLOCKS_PER_ROW;

    /** The most blocks a row may be given: an H100's largest (non-portable) cluster. */
    public static final int LARGEST_BLOCKS_PER_ROW = RowClusters.LARGEST_BLOCKS_PER_ROW;

    /** The largest vocabulary the fixed-point sum holds (sampling_logprobs.cu's COIL_LOGPROB_UNIT). */
    public static final int MAX_VOCAB = 1 << 20;

    private static final int TOP_THREADS = 512;
    private static final int CHOSEN_THREADS = 128;
    private static final int PROMPT_THREADS = 256;

    private final Kernel top;
    private final Kernel chosen;
    private final Kernel prompt;
    private final RowClusters rowClusters;

    public LogprobsKernel(KernelModule module) {
        this.top = module.kernel("sampling_logprobs_top_f32");
        this.chosen = module.kernel("sampling_logprobs_chosen_f32");
        this.prompt = module.kernel("sampling_logprobs_prompt_f32");
        this.rowClusters = new RowClusters(module, top);
    }

    /**
     * The blocks that take each of {@code count} rows in {@link #top}: the most (a power of two up to
     * {@value #MOST_BLOCKS_PER_ROW}) that leave every block a multiprocessor of its own; 1 where clusters
     * cannot be launched.
     */
    public int blocksPerRow(int count) {
        return rowClusters.blocksPerRow(count);
    }

    /** Whether {@code blocks} blocks may take one row here: 1, or on sm_90 a power of two up to 16. */
    public boolean allowsBlocksPerRow(int blocks) {
        return rowClusters.allows(blocks);
    }

    /**
     * For each of {@code count} records: the log normalizer of logits row rows[i], its tops[i] (0 to
     * {@value #MOST_TOP}) most likely tokens, and the row copied to raw[i].
     *
     * @param logits (batch, vocab) f32, each divided by {@code divisor} as it is read (1: as they are), so
     *               that the records are of the logits as the host sees them
     * @param rows (count) int32 rows of logits
     * @param tops (count) int32
     * @param raw (count, vocab) f32 workspace, read by {@link #chosen}; null: no copy
     * @param records (count, {@value #RECORD_WORDS}) words
     */
    public void top(CudaStream stream, DeviceBuffer logits, int vocab, float divisor, int count, DeviceBuffer rows,
            DeviceBuffer tops, DeviceBuffer raw, DeviceBuffer records) {
        top(stream, logits, vocab, divisor, count, rows, tops, raw, records, blocksPerRow(count));
    }

    /**
     * As above, with {@code blocksPerRow} blocks taking each row ({@link #allowsBlocksPerRow}); the records
     * are the same for any of them.
     */
    public void top(CudaStream stream, DeviceBuffer logits, int vocab, float divisor, int count, DeviceBuffer rows,
            DeviceBuffer tops, DeviceBuffer raw, DeviceBuffer records, int blocksPerRow) {
        launchTop(stream, logits, vocab, divisor, count, rows, tops, raw, records, null, null, blocksPerRow);
    }

    /**
     * {@link #top} without the copy, as the greedy draw of the records' rows too: tokens[rows[i]] (int32,
     * and hostTokens[rows[i]] where not null) is the row's argmax (the largest logit divided by {@code
     * divisor}, the lower id on ties; -1 when every logit is -infinity: {@link SamplingKernel}'s rule at
     * temperature 0), and each record's chosen log-probability is its token's, as {@link #chosen} would
     * set it. For a step whose rows are all greedy, all want logprobs, and have no mask, bias or penalty:
     * one launch instead of the logits divided, the draw and {@link #chosen}.
     */
    public void drawGreedy(CudaStream stream, DeviceBuffer logits, int vocab, float divisor, int count,
            DeviceBuffer rows, DeviceBuffer tops, DeviceBuffer records, DeviceBuffer tokens, DeviceBuffer hostTokens) {
        tokens.requireFloats(count, "tokens");
        if (hostTokens != null) {
            hostTokens.requireFloats(count, "hostTokens");
        }
        launchTop(stream, logits, vocab, divisor, count, rows, tops, null, records, tokens, hostTokens,
                blocksPerRow(count));
    }

    private void launchTop(CudaStream stream, DeviceBuffer logits, int vocab, float divisor, int count,
            DeviceBuffer rows, DeviceBuffer tops, DeviceBuffer raw, DeviceBuffer records, DeviceBuffer tokens,
            DeviceBuffer hostTokens, int blocksPerRow) {
        rowClusters.require(blocksPerRow);
        RowKernels.requirePositive(vocab, "vocab");
        if (vocab > MAX_VOCAB) {
            throw new IllegalArgumentException("logprobs on the device hold vocabularies up to " + MAX_VOCAB
                    + " tokens, not " + vocab);
        }
        RowKernels.requireNonNegative(count, "count");
        rows.requireFloats(count, "rows");
        tops.requireFloats(count, "tops");
        if (raw != null) {
            raw.requireFloats((long) count * vocab, "raw");
        }
        records.requireFloats((long) count * RECORD_WORDS, "records");
        if (count > 0 && blocksPerRow == 1) {
            top.launch(stream, count, 1, 1, TOP_THREADS, 0, logits, vocab, divisor, rows, tops, raw, records, tokens,
                    hostTokens);
        } else if (count > 0) {
            top.launchClusters(stream, count * blocksPerRow, blocksPerRow, TOP_THREADS, 0, logits, vocab, divisor,
                    rows, tops, raw, records, tokens, hostTokens);
        }
    }

    /**
     * After {@link #top} with the same logits, divisor and rows: each record's chosen log-probability
     * is that of tokens[i] (int32; the prompt token after its row, -1 for none, which leaves NaN) and
     * ranks[i] (int32) its rank there, 1 + the row's tokens more likely (0 for none).
     */
    public void prompt(CudaStream stream, DeviceBuffer logits, int vocab, float divisor, int count, DeviceBuffer rows,
            DeviceBuffer tokens, DeviceBuffer records, DeviceBuffer ranks) {
        RowKernels.requirePositive(vocab, "vocab");
        rows.requireFloats(count, "rows");
        tokens.requireFloats(count, "tokens");
        records.requireFloats((long) count * RECORD_WORDS, "records");
        ranks.requireFloats(count, "ranks");
        if (count > 0) {
            prompt.launch(stream, count, 1, 1, PROMPT_THREADS, 0, logits, vocab, divisor, rows, tokens, records, ranks);
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
