package dev.coil.engine.model;

import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.PagedKeyValues;
import java.util.Arrays;

/**
 * Causal multi-head attention with grouped KV heads:
 * q, k, v = x·Wq, x·Wk, x·Wv → RoPE on the first rotaryDim dims (none when 0) → append k, v to the
 * sequence's paged cache → softmax(q·kᵀ · scale) · v over the cache → o_proj.
 * Projections run over every row of the batch at once; RoPE, the cache and attention per sequence.
 */
public final class AttentionMixer implements Mixer {

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

    public AttentionShape shape() {
        return shape;
    }

    public Linear query() {
        return query;
    }

    public Linear key() {
        return key;
    }

    public Linear value() {
        return value;
    }

    public Linear output() {
        return output;
    }

    @Override
    public LayerState newState() {
        return null;
    }

    @Override
    public float[] forward(Ops ops, float[] x, Batch batch, int block) {
        int rows = batch.rows();
        int queryWidth = spec.queryHeads() * spec.headDim();
        int kvWidth = spec.kvHeads() * spec.headDim();
        float[] q = query.apply(ops, x, rows);
        float[] k = key.apply(ops, x, rows);
        float[] v = value.apply(ops, x, rows);
        float[] attended = new float[rows * queryWidth];
        for (int s = 0; s < batch.size(); s++) {
            int first = batch.firstRow(s);
            int tokens = batch.tokens(s);
            int past = batch.past(s);
            float[] segmentQ = rowSlice(q, first, tokens, queryWidth);
            float[] segmentK = rowSlice(k, first, tokens, kvWidth);
            float[] segmentV = rowSlice(v, first, tokens, kvWidth);
            if (spec.rotaryDim() > 0) {
                ops.rope(segmentQ, tokens, spec.queryHeads(), spec.headDim(), spec.rotaryDim(), spec.ropeTheta(), past);
                ops.rope(segmentK, tokens, spec.kvHeads(), spec.headDim(), spec.rotaryDim(), spec.ropeTheta(), past);
            }
            SequenceState sequence = batch.sequence(s);
            PagedKeyValues cache = sequence.keyValues().layer(block);
            cache.write(sequence.blockTable(), past, tokens, segmentK, segmentV);
            float[] out = new float[tokens * queryWidth];
            ops.pagedAttention(shape, tokens, past, spec.scale(), segmentQ, cache, sequence.blockTable(), out);
            System.arraycopy(out, 0, attended, first * queryWidth, out.length);
        }
        return output.apply(ops, attended, rows);
    }

    /** Rows [first, first + count) of a [rows, width] array. */
    static float[] rowSlice(float[] rows, int first, int count, int width) {
        return Arrays.copyOfRange(rows, first * width, (first + count) * width);
    }
}
