package dev.coil.engine.runner;

import dev.coil.engine.model.HybridModel;
import dev.coil.engine.model.Phase;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.ops.Ops;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Logprobs of every prompt token given the ones before it (perplexity, OpenAI's echo + logprobs).
 * The prompt is prefilled in chunks with logits at every position, so memory stays at
 * chunk × vocabulary floats whatever the prompt's length.
 */
public final class Scorer {

    private static final int CHUNK = 256;

    private final LoadedModel loaded;
    private final Ops ops;

    public Scorer(LoadedModel loaded, Ops ops) {
        this.loaded = loaded;
        this.ops = ops;
    }

    public ScoreResult score(int[] ids, int topK) {
        if (ids.length == 0) {
            throw new IllegalArgumentException("prompt must contain at least one token");
        }
        HybridModel model = loaded.model();
        int vocab = model.config().vocabSize();
        SequenceState sequence = model.newSequence();
        float[] logprobs = new float[ids.length];
        logprobs[0] = Float.NaN;
        int[] ranks = new int[ids.length];
        List<List<TokenLogprob>> top = new ArrayList<>();
        for (int start = 0; start < ids.length; start += CHUNK) {
            int end = Math.min(ids.length, start + CHUNK);
            float[] logits = model.forward(ops, sequence, Arrays.copyOfRange(ids, start, end), Phase.PREFILL, true);
            for (int position = start; position < end; position++) {
                float[] row = Arrays.copyOfRange(logits, (position - start) * vocab, (position - start + 1) * vocab);
                float[] distribution = Sampler.logSoftmax(row);
                if (position + 1 < ids.length) {
                    logprobs[position + 1] = distribution[ids[position + 1]];
                    ranks[position + 1] = Sampler.rank(distribution, ids[position + 1]);
                }
                top.add(topK > 0 ? Sampler.topLogprobs(distribution, topK) : List.of());
            }
        }
        return new ScoreResult(ids.clone(), logprobs, ranks, top);
    }
}
