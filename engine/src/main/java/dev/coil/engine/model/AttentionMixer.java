package dev.coil.engine.model;

import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.Ops;

/**
 * Causal multi-head attention with grouped KV heads:
 * q, k, v = x·Wq, x·Wk, x·Wv → RoPE on the first rotaryDim dims (none when 0) → append k, v to the
 * cache → softmax(q·kᵀ · scale) · v → o_proj.
 */
public final class AttentionMixer implements Mixer {

    private static final int INITIAL_CACHE_TOKENS = 256;

    private final BlockSpec.Attention spec;
    private final AttentionShape shape;
    private final Linear query;
    private final Linear key;
    private final Linear value;
    private final Linear output;

    public AttentionMixer(BlockSpec.Attention spec, Linear query, Linear key, Linear value, Linear output) {
        this.spec = spec;
        this.shape = new AttentionShape(spec.queryHeads(), spec.kvHeads(), spec.headDim());
        this.query = query;
        this.key = key;
        this.value = value;
        this.output = output;
    }

    public BlockSpec.Attention spec() {
        return spec;
    }

    @Override
    public LayerState.KeyValues newState() {
        return new LayerState.KeyValues(spec.kvHeads(), spec.headDim(), INITIAL_CACHE_TOKENS);
    }

    @Override
    public float[] forward(Ops ops, float[] x, int tokens, int past, Phase phase, LayerState state) {
        LayerState.KeyValues cache = (LayerState.KeyValues) state;
        float[] q = query.apply(ops, x, tokens);
        float[] k = key.apply(ops, x, tokens);
        float[] v = value.apply(ops, x, tokens);
        if (spec.rotaryDim() > 0) {
            ops.rope(q, tokens, spec.queryHeads(), spec.headDim(), spec.rotaryDim(), spec.ropeTheta(), past);
            ops.rope(k, tokens, spec.kvHeads(), spec.headDim(), spec.rotaryDim(), spec.ropeTheta(), past);
        }
        cache.write(past, tokens, k, v);
        float[] attended = new float[tokens * spec.queryHeads() * spec.headDim()];
        ops.attention(shape, tokens, past, spec.scale(), q, cache.keys(), cache.values(), attended);
        return output.apply(ops, attended, tokens);
    }
}
