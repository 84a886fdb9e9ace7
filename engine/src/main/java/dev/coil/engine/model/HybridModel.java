package dev.coil.engine.model;

import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.load.DType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A decoder-only hybrid of Mamba-2, attention and MLP blocks:
 * <pre>
 *   h = E[ids] · embeddingMultiplier
 *   for each block:  h = h + mixer(rmsnorm(h)) · residualMultiplier
 *   logits = lm_head(rmsnorm_final(h)) / logitsDivisor
 * </pre>
 * Stateless itself: each sequence's recurrent and K/V state lives in a {@link SequenceState}, so one
 * forward step can carry many sequences (a {@link Batch}).
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

    /** The embedding matrix [vocab, hidden]. */
    public Matrix embeddings() {
        return embeddings;
    }

    /** Block {@code block}'s pre-norm weight [hidden]. */
    public float[] blockNorm(int block) {
        return blockNorms.get(block);
    }

    /** Block {@code block}'s mixer: a {@link Mamba2Mixer}, an {@link AttentionMixer} or a {@link FeedForward}. */
    public Mixer mixer(int block) {
        return mixers.get(block);
    }

    /** The final norm's weight [hidden]. */
    public float[] finalNorm() {
        return finalNorm;
    }

    /** lm_head [vocab, hidden] (the embeddings when tied). */
    public Matrix lmHead() {
        return lmHead;
    }

    /**
     * A standalone sequence with a private, growing f32 K/V store: for one-off generation, scoring
     * and tests. The serving engine builds its sequences on its own pools with {@link #newSequence(KeyValueStore, LayerState[])}.
     */
    public SequenceState newSequence() {
        return newSequence(DType.F32);
    }

    /** As {@link #newSequence()}, its K/V kept in {@code kvDtype} (F32 or BF16, as serve's --kv-dtype). */
    public SequenceState newSequence(DType kvDtype) {
        return newSequence(new GrowingKeyValueStore(config.blocks(), kvDtype), newLayerStates());
    }

    /** A sequence whose K/V live in {@code keyValues} and whose Mamba state is {@code layers} (from {@link #newLayerStates()}). */
    public SequenceState newSequence(KeyValueStore keyValues, LayerState[] layers) {
        return newSequence(keyValues, layers, -1);
    }

    /**
     * A sequence of the serving engine whose state sits in slot {@code slot} of its cache: on the
     * host, {@code layers} are that slot's states; on a GPU, layers are empty and the backend finds
     * the state by the slot.
     */
    public SequenceState newSequence(KeyValueStore keyValues, LayerState[] layers, int slot) {
        if (layers.length != mixers.size()) {
            throw new IllegalArgumentException("expected " + mixers.size() + " layer states, got " + layers.length);
        }
        return new SequenceState(layers, keyValues, slot);
    }

    /** Fresh per-block states: a zero {@link LayerState.Mamba} for each Mamba block, null elsewhere. */
    public LayerState[] newLayerStates() {
        LayerState[] states = new LayerState[mixers.size()];
        for (int i = 0; i < states.length; i++) {
            states[i] = mixers.get(i).newState();
        }
        return states;
    }

    /**
     * Runs {@code tokens} through the model as one segment, appending them to {@code sequence}.
     * PREFILL treats them as prompt tokens (Mamba's dt clamp applies), DECODE as generated ones.
     *
     * @param allLogits true: logits for every position [tokens, vocab] (scoring); false: only the last [vocab]
     */
    public float[] forward(Ops ops, SequenceState sequence, int[] tokens, Phase phase, boolean allLogits) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("forward needs at least one token");
        }
        int clamped = phase == Phase.PREFILL ? tokens.length : 0;
        Batch.Logits wanted = allLogits ? Batch.Logits.ALL : Batch.Logits.LAST;
        return forward(ops, new Batch(List.of(new Batch.Segment(sequence, tokens, clamped, wanted)))).get(0);
    }

    /**
     * One step over several sequences at once: each segment's tokens are appended to its sequence.
     * Returns, per segment, the logits it asked for ([tokens, vocab], [vocab], or null).
     * Segments must belong to distinct sequences.
     */
    public List<float[]> forward(Ops ops, Batch batch) {
        int hidden = config.hiddenSize();
        int rows = batch.rows();
        for (int s = 0; s < batch.size(); s++) {
            SequenceState sequence = batch.segment(s).sequence();
            sequence.keyValues().reserve(sequence, batch.past(s) + batch.tokens(s));
        }
        float[] h = embed(batch);

        float[] normed = new float[rows * hidden];
        float multiplier = config.residualMultiplier();
        for (int block = 0; block < mixers.size(); block++) {
            ops.rmsNorm(h, rows, hidden, blockNorms.get(block), config.normEps(), normed);
            float[] update = mixers.get(block).forward(ops, normed, batch, block);
            for (int i = 0; i < h.length; i++) {
                h[i] += update[i] * multiplier;
            }
        }
        for (int s = 0; s < batch.size(); s++) {
            batch.segment(s).sequence().advance(batch.tokens(s));
        }
        return logits(ops, batch, h);
    }

    /** lm_head over the rows each segment wants: one matrix product for the whole batch. */
    private List<float[]> logits(Ops ops, Batch batch, float[] h) {
        int hidden = config.hiddenSize();
        int vocab = config.vocabSize();
        int[] wantedRows = new int[batch.size()];
        int total = 0;
        for (int s = 0; s < batch.size(); s++) {
            wantedRows[s] = switch (batch.segment(s).logits()) {
                case NONE -> 0;
                case LAST, GREEDY, SAMPLE -> 1;
                case ALL -> batch.tokens(s);
            };
            total += wantedRows[s];
        }
        List<float[]> results = new ArrayList<>(batch.size());
        if (total == 0) {
            for (int s = 0; s < batch.size(); s++) {
                results.add(null);
            }
            return results;
        }
        float[] selected = new float[total * hidden];
        int row = 0;
        for (int s = 0; s < batch.size(); s++) {
            int last = batch.firstRow(s) + batch.tokens(s);
            System.arraycopy(h, (last - wantedRows[s]) * hidden, selected, row * hidden, wantedRows[s] * hidden);
            row += wantedRows[s];
        }
        ops.rmsNorm(selected, total, hidden, finalNorm, config.normEps(), selected);
        float[] logits = new float[total * vocab];
        ops.matmul(selected, total, lmHead, logits);
        if (config.logitsDivisor() != 1f) {
            for (int i = 0; i < logits.length; i++) {
                logits[i] /= config.logitsDivisor();
            }
        }
        row = 0;
        for (int s = 0; s < batch.size(); s++) {
            results.add(wantedRows[s] == 0 ? null
                    : Arrays.copyOfRange(logits, row * vocab, (row + wantedRows[s]) * vocab));
            row += wantedRows[s];
        }
        return results;
    }

    private float[] embed(Batch batch) {
        int hidden = config.hiddenSize();
        float[] h = new float[batch.rows() * hidden];
        for (int s = 0; s < batch.size(); s++) {
            int[] tokens = batch.segment(s).tokens();
            int first = batch.firstRow(s);
            for (int t = 0; t < tokens.length; t++) {
                int id = tokens[t];
                if (id < 0 || id >= embeddings.rows()) {
                    throw new IllegalArgumentException(
                            "token id " + id + " is outside the vocabulary [0, " + embeddings.rows() + ")");
                }
                embeddings.readRow(id, h, (first + t) * hidden);
            }
        }
        if (config.embeddingMultiplier() != 1f) {
            for (int i = 0; i < h.length; i++) {
                h[i] *= config.embeddingMultiplier();
            }
        }
        return h;
    }
}
