package dev.coil.engine.parallel;

import dev.coil.engine.runner.Sampler;
import dev.coil.engine.runner.ScoreResult;
import dev.coil.engine.runner.TokenLogprob;
import java.util.Arrays;
import java.util.List;

/**
 * Prompt logprobs gathered device by device from a sharded prefill: each device turns its own
 * rows' hidden states into logits, a bounded number of rows at a time, and each row's log-softmax
 * gives the logprob of the token after it and the top tokens for the position after it. Devices
 * fill disjoint positions, so they may add theirs at once, from their own threads.
 */
public final class ScoreCollector {

    /** Logits of rows [first, first + rows) of one device's rows: [rows, vocab]. */
    @FunctionalInterface
    public interface RowLogits {
        float[] logits(int first, int rows);
    }

    private final int[] ids;
    private final Sharding sharding;
    private final int vocab;
    private final int topK;
    private final float[] logprobs;
    private final int[] ranks;
    private final List<TokenLogprob>[] top;

    @SuppressWarnings("unchecked")
    public ScoreCollector(int[] ids, Sharding sharding, int vocab, int topK) {
        this.ids = ids.clone();
        this.sharding = sharding;
        this.vocab = vocab;
        this.topK = topK;
        this.logprobs = new float[ids.length];
        this.logprobs[0] = Float.NaN;
        this.ranks = new int[ids.length];
        this.top = new List[ids.length];
    }

    /** Scores every row {@code device} holds, asking for at most {@code rowsAtOnce} rows of logits at a time. */
    public void addDevice(int device, int rowsAtOnce, RowLogits rowLogits) {
        int[] positions = sharding.positions(device);
        for (int first = 0; first < positions.length; first += rowsAtOnce) {
            int rows = Math.min(rowsAtOnce, positions.length - first);
            float[] logits = rowLogits.logits(first, rows);
            for (int row = 0; row < rows; row++) {
                int position = positions[first + row];
                float[] distribution = Sampler.logSoftmax(Arrays.copyOfRange(logits, row * vocab, (row + 1) * vocab));
                if (position + 1 < ids.length) {
                    logprobs[position + 1] = distribution[ids[position + 1]];
                    ranks[position + 1] = Sampler.rank(distribution, ids[position + 1]);
                }
                top[position] = topK > 0 ? Sampler.topLogprobs(distribution, topK) : List.of();
            }
        }
    }

    /** The scores, once every device has added its rows. */
    public RingScore result() {
        return new RingScore(new ScoreResult(ids, logprobs, ranks, List.of(top)), sharding);
    }
}
