package dev.coil.engine.model;

import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;
import java.util.List;

/**
 * A decoder-only hybrid of Mamba-2, attention and MLP blocks:
 * <pre>
 *   h = E[ids] · embeddingMultiplier
 *   for each block:  h = h + mixer(rmsnorm(h)) · residualMultiplier
 *   logits = lm_head(rmsnorm_final(h)) / logitsDivisor
 * </pre>
 * Stateless itself: each sequence's recurrent and K/V state lives in a {@link SequenceState}.
 */
public final class HybridModel {

    private final ModelConfig config;
    private final Matrix embeddings; // [vocab, hidden]
    private final List<float[]> blockNorms; // per block: [hidden]
    private final List<Mixer> mixers;
    private final float[] finalNorm; // [hidden]
    private final Matrix lmHead; // [vocab, hidden]

    public HybridModel(ModelConfig config, Matrix embeddings, List<float[]> blockNorms, List<Mixer> mixers,
            float[] finalNorm, Matrix lmHead) {
        this.config = config;
        this.embeddings = embeddings;
        this.blockNorms = List.copyOf(blockNorms);
        this.mixers = List.copyOf(mixers);
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;
    }

    public ModelConfig config() {
        return config;
    }

    /** A fresh state for a new sequence. */
    public SequenceState newSequence() {
        LayerState[] states = new LayerState[mixers.size()];
        for (int i = 0; i < states.length; i++) {
            states[i] = mixers.get(i).newState();
        }
        return new SequenceState(states, 0);
    }

    /**
     * Runs {@code tokens} through the model, appending them to {@code sequence}.
     *
     * @param allLogits true: logits for every position [tokens, vocab] (scoring); false: only the last [vocab]
     */
    public float[] forward(Ops ops, SequenceState sequence, int[] tokens, Phase phase, boolean allLogits) {
        int count = tokens.length;
        if (count == 0) {
            throw new IllegalArgumentException("forward needs at least one token");
        }
        int hidden = config.hiddenSize();
        int past = sequence.length();
        float[] h = embed(tokens);

        float[] normed = new float[count * hidden];
        for (int block = 0; block < mixers.size(); block++) {
            ops.rmsNorm(h, count, hidden, blockNorms.get(block), config.normEps(), normed);
            float[] update = mixers.get(block).forward(ops, normed, count, past, phase, sequence.layer(block));
            float multiplier = config.residualMultiplier();
            for (int i = 0; i < h.length; i++) {
                h[i] += update[i] * multiplier;
            }
        }
        sequence.advance(count);

        int rows = allLogits ? count : 1;
        float[] last = new float[rows * hidden];
        System.arraycopy(h, (count - rows) * hidden, last, 0, rows * hidden);
        ops.rmsNorm(last, rows, hidden, finalNorm, config.normEps(), last);
        float[] logits = new float[rows * config.vocabSize()];
        ops.matmul(last, rows, lmHead, logits);
        if (config.logitsDivisor() != 1f) {
            for (int i = 0; i < logits.length; i++) {
                logits[i] /= config.logitsDivisor();
            }
        }
        return logits;
    }

    private float[] embed(int[] tokens) {
        int hidden = config.hiddenSize();
        float[] h = new float[tokens.length * hidden];
        for (int t = 0; t < tokens.length; t++) {
            int id = tokens[t];
            if (id < 0 || id >= embeddings.rows()) {
                throw new IllegalArgumentException(
                        "token id " + id + " is outside the vocabulary [0, " + embeddings.rows() + ")");
            }
            embeddings.readRow(id, h, t * hidden);
        }
        if (config.embeddingMultiplier() != 1f) {
            for (int i = 0; i < h.length; i++) {
                h[i] *= config.embeddingMultiplier();
            }
        }
        return h;
    }
}
