package dev.coil.engine.parallel;

import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.Sampler;
import dev.coil.engine.runner.ScoreResult;
import dev.coil.engine.runner.Scorer;
import dev.coil.engine.runner.TokenLogprob;
import java.util.Arrays;
import java.util.List;

/**
 * {@link Scorer}'s prompt logprobs, with the prompt's context sharded over virtual devices: each
 * device turns its own rows' hidden states into logprobs, so no device ever holds the whole
 * prompt's activations.
 */
public final class ContextParallelScorer {

    /** Rows per lm_head product: bounds the logits held at once to this many × vocabulary floats per device. */
    private static final int LOGIT_ROWS = 256;

    private final ContextParallelModel model;
    private final ShardLayout layout;

    public ContextParallelScorer(LoadedModel loaded, VirtualDevices devices, ShardLayout layout) {
        this.model = new ContextParallelModel(loaded.model(), devices);
        this.layout = layout;
    }

    public RingScore score(int[] ids, int topK) {
        if (ids.length == 0) {
            throw new IllegalArgumentException("prompt must contain at least one token");
        }
        ShardedSequence sequence = model.newSequence(layout, ids.length);
        Sharding sharding = sequence.sharding();
        float[][] hidden = model.prefill(sequence, ids);

        int vocab = model.model().config().vocabSize();
        float[] logprobs = new float[ids.length];
        logprobs[0] = Float.NaN;
        @SuppressWarnings("unchecked")
        List<TokenLogprob>[] top = new List[ids.length];
        model.devices().forEach(d -> {
            int[] positions = sharding.positions(d);
            for (int first = 0; first < positions.length; first += LOGIT_ROWS) {
                int rows = Math.min(LOGIT_ROWS, positions.length - first);
                float[] logits = model.logits(d, hidden[d], first, rows);
                for (int row = 0; row < rows; row++) {
                    int position = positions[first + row];
                    float[] distribution = Sampler.logSoftmax(Arrays.copyOfRange(logits, row * vocab,
                            (row + 1) * vocab));
                    if (position + 1 < ids.length) {
                        logprobs[position + 1] = distribution[ids[position + 1]];
                    }
                    top[position] = topK > 0 ? Sampler.topLogprobs(distribution, topK) : List.of();
                }
            }
        });
        return new RingScore(new ScoreResult(ids.clone(), logprobs, List.of(top)), sharding);
    }
}
