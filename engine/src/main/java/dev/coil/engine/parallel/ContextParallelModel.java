package dev.coil.engine.parallel;

import dev.coil.engine.model.AttentionMixer;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.FeedForward;
import dev.coil.engine.model.HybridModel;
import dev.coil.engine.model.Mamba2Mixer;
import dev.coil.engine.model.Mixer;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;
import java.util.Arrays;
import java.util.List;

/**
 * A {@link HybridModel} run with one sequence's context spread over N devices (context
 * parallelism). The prompt's rows are sharded ({@link Sharding}); everything that works row by
 * row (embedding, norms, projections, MLPs, residuals) runs on each device's rows alone, and only
 * the two token mixers talk: attention blocks by ring attention ({@link RingAttention}), Mamba-2
 * blocks by passing states along the chain of chunks ({@link ChunkedStatePassing}). The result
 * equals the one-device forward up to f32 rounding.
 *
 * <p>Generated tokens are decoded on the state device (the holder of the prompt's last chunk and
 * so of the Mamba states): their K/V join its shard, and each attention block merges the
 * partials of every device's shard.
 */
public final class ContextParallelModel {

    private final HybridModel model;
    private final VirtualDevices devices;
    private final RingAttention[] attention; // per block; null elsewhere
    private final ChunkedStatePassing[] mamba; // per block; null elsewhere

    public ContextParallelModel(HybridModel model, VirtualDevices devices) {
        this.model = model;
        this.devices = devices;
        int blocks = model.config().blocks().size();
        this.attention = new RingAttention[blocks];
        this.mamba = new ChunkedStatePassing[blocks];
        for (int block = 0; block < blocks; block++) {
            switch (model.mixer(block)) {
                case AttentionMixer mixer -> attention[block] = new RingAttention(mixer, devices);
                case Mamba2Mixer mixer -> mamba[block] = new ChunkedStatePassing(mixer, devices);
                case FeedForward mixer -> { }
            }
        }
    }

    public HybridModel model() {
        return model;
    }

    public VirtualDevices devices() {
        return devices;
    }

    /** A fresh sequence whose prompt of {@code tokens} tokens will be laid out as {@code layout} says. */
    public ShardedSequence newSequence(ShardLayout layout, int tokens) {
        return new ShardedSequence(model, new Sharding(layout, devices.count(), tokens));
    }

    /**
     * Runs the prompt through every block, sharded: h = h + mixer(rmsnorm(h)) · residualMultiplier
     * on each device's rows. Returns the final hidden rows per device (before the final norm),
     * [rows(d), hidden], for {@link #logits}.
     */
    public float[][] prefill(ShardedSequence sequence, int[] prompt) {
        Sharding sharding = sequence.sharding();
        if (sequence.length() != 0 || prompt.length != sharding.tokens()) {
            throw new IllegalArgumentException("a sharded sequence is prefilled once, with the " + sharding.tokens()
                    + " tokens it was laid out for; got " + prompt.length + " tokens at position " + sequence.length());
        }
        checkIds(prompt);
        int n = devices.count();
        ModelConfig config = model.config();
        int hidden = config.hiddenSize();
        float[][] h = new float[n][];
        devices.forEach(d -> h[d] = embed(prompt, sharding.positions(d)));

        for (int block = 0; block < config.blocks().size(); block++) {
            int b = block;
            float[][] normed = new float[n][];
            devices.forEach(d -> {
                normed[d] = new float[h[d].length];
                devices.ops(d).rmsNorm(h[d], sharding.rows(d), hidden, model.blockNorm(b), config.normEps(), normed[d]);
            });
            float[][] update = switch (model.mixer(block)) {
                case AttentionMixer mixer -> attention[block].prefill(sharding, normed, sequence.shards(block));
                case Mamba2Mixer mixer -> mamba[block].prefill(sharding, normed, sequence.mambaState(block));
                case FeedForward mixer -> rowWise(mixer, sharding, normed);
            };
            devices.forEach(d -> addResidual(h[d], update[d]));
        }
        sequence.advance(prompt.length);
        return h;
    }

    /** The logits of the prompt's last position: what the first generated token is sampled from. [vocab] */
    public float[] lastLogits(ShardedSequence sequence, float[][] hidden) {
        int[] location = sequence.sharding().locate(sequence.sharding().tokens() - 1);
        int device = location[0];
        return devices.on(device, () -> logits(device, hidden[device], location[1], 1));
    }

    /**
     * lm_head(rmsnorm_final(h)) / logitsDivisor over rows [first, first + rows) of one device's
     * hidden rows, with that device's ops (call from its thread). [rows, vocab]
     */
    public float[] logits(int device, float[] hidden, int first, int rows) {
        ModelConfig config = model.config();
        int width = config.hiddenSize();
        Ops ops = devices.ops(device);
        float[] selected = Arrays.copyOfRange(hidden, first * width, (first + rows) * width);
        ops.rmsNorm(selected, rows, width, model.finalNorm(), config.normEps(), selected);
        Matrix lmHead = model.lmHead();
        float[] logits = new float[rows * lmHead.rows()];
        ops.matmul(selected, rows, lmHead, logits);
        if (config.logitsDivisor() != 1f) {
            for (int i = 0; i < logits.length; i++) {
                logits[i] /= config.logitsDivisor();
            }
        }
        return logits;
    }

    /**
     * One generated token, appended to the sequence: its row runs on the state device, attention
     * blocks gather partials from every device's shard. Returns its logits [vocab].
     */
    public float[] decode(ShardedSequence sequence, int token) {
        int position = sequence.length();
        if (position == 0) {
            throw new IllegalArgumentException("decode continues a prefilled sharded sequence; prefill it first");
        }
        checkIds(new int[] {token});
        ModelConfig config = model.config();
        int hidden = config.hiddenSize();
        int home = sequence.stateDevice();
        Batch step = new Batch(List.of(new Batch.Segment(sequence.recurrent(), new int[] {token}, 0,
                Batch.Logits.NONE)));
        float[] h = devices.on(home, () -> embed(new int[] {token}, new int[] {0}));
        for (int block = 0; block < config.blocks().size(); block++) {
            int b = block;
            float[] normed = devices.on(home, () -> {
                float[] out = new float[hidden];
                devices.ops(home).rmsNorm(h, 1, hidden, model.blockNorm(b), config.normEps(), out);
                return out;
            });
            Mixer mixer = model.mixer(block);
            float[] update = mixer instanceof AttentionMixer
                    ? attention[block].decode(normed, position, sequence.shards(block), home)
                    : devices.on(home, () -> mixer.forward(devices.ops(home), normed, step, b));
            devices.on(home, () -> {
                addResidual(h, update);
                return null;
            });
        }
        sequence.advance(1);
        return devices.on(home, () -> logits(home, h, 0, 1));
    }

    /** An MLP block: every device's rows on their own. */
    private float[][] rowWise(FeedForward mixer, Sharding sharding, float[][] x) {
        float[][] update = new float[devices.count()][];
        devices.forEach(d -> update[d] = mixer.apply(devices.ops(d), x[d], sharding.rows(d)));
        return update;
    }

    private void addResidual(float[] h, float[] update) {
        float multiplier = model.config().residualMultiplier();
        for (int i = 0; i < h.length; i++) {
            h[i] += update[i] * multiplier;
        }
    }

    /** E[ids[p]] · embeddingMultiplier for each of the given positions: [positions, hidden]. */
    private float[] embed(int[] ids, int[] positions) {
        int hidden = model.config().hiddenSize();
        float[] h = new float[positions.length * hidden];
        for (int row = 0; row < positions.length; row++) {
            model.embeddings().readRow(ids[positions[row]], h, row * hidden);
        }
        float multiplier = model.config().embeddingMultiplier();
        if (multiplier != 1f) {
            for (int i = 0; i < h.length; i++) {
                h[i] *= multiplier;
            }
        }
        return h;
    }

    private void checkIds(int[] ids) {
        int vocab = model.embeddings().rows();
        for (int id : ids) {
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
    }
}
