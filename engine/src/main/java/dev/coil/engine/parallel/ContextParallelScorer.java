package dev.coil.engine.parallel;

import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.Scorer;

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

        ScoreCollector collector = new ScoreCollector(ids, sharding, model.model().config().vocabSize(), topK);
        model.devices().forEach(d -> collector.addDevice(d, LOGIT_ROWS,
                (first, rows) -> model.logits(d, hidden[d], first, rows)));
        return collector.result();
    }
}
