package dev.coil.engine.ref;

import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.PagedKeyValues;
import dev.coil.engine.ops.SsmShape;

/**
 * Plain, obviously correct ops: scalar loops, double accumulation, the sequential SSM recurrence,
 * and attention with the full score row. The truth the CPU ops and the model tests compare to.
 */
public final class ReferenceOps implements Ops {

    @Override
    public String name() {
        return "ref";
    }

    @Override
    public void matmul(float[] x, int tokens, Matrix w, float[] out) {
        LinearRef.matmul(x, tokens, w, out);
    }

    @Override
    public void rmsNorm(float[] x, int tokens, int dim, float[] weight, float eps, float[] out) {
        LinearRef.rmsNorm(x, tokens, dim, weight, eps, out);
    }

    @Override
    public void gatedRmsNorm(float[] y, float[] z, int tokens, int dim, int groupSize, float[] weight, float eps,
            float[] out) {
        LinearRef.gatedRmsNorm(y, z, tokens, dim, groupSize, weight, eps, out);
    }

    @Override
    public void causalConv1d(float[] input, int tokens, int channels, float[] weight, float[] bias, int kernel,
            float[] state, float[] out) {
        LinearRef.causalConv1d(input, tokens, channels, weight, bias, kernel, state, out);
    }

    @Override
    public void ssdScan(SsmShape shape, int tokens, int chunkSize, float[] x, float[] dt, float[] A, float[] B,
            float[] C, float[] D, float[] state, float[] y) {
        SequenceRef.scan(shape, tokens, x, dt, A, B, C, D, state, y);
    }

    @Override
    public void ssmStep(SsmShape shape, float[] x, float[] dt, float[] A, float[] B, float[] C, float[] D,
            float[] state, float[] y) {
        SequenceRef.scan(shape, 1, x, dt, A, B, C, D, state, y);
    }

    @Override
    public void attention(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys,
            float[] values, float[] out) {
        SequenceRef.attention(shape, tokens, past, scale, q, keys, values, out);
    }

    @Override
    public void pagedAttention(AttentionShape shape, int tokens, int past, float scale, float[] q,
            PagedKeyValues cache, int[] blockTable, float[] out) {
        int length = past + tokens;
        float[] keys = new float[length * cache.rowWidth()];
        float[] values = new float[keys.length];
        cache.gather(blockTable, 0, length, keys, values);
        SequenceRef.attention(shape, tokens, past, scale, q, keys, values, out);
    }

    @Override
    public void rope(float[] x, int tokens, int heads, int headDim, int rotaryDim, float theta, int firstPosition) {
        LinearRef.rope(x, tokens, heads, headDim, rotaryDim, theta, firstPosition);
    }
}
