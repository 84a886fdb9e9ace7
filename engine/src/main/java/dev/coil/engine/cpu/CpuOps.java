package dev.coil.engine.cpu;

import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.PagedKeyValues;
import dev.coil.engine.ops.SsmShape;

/** The CPU backend: f32 compute with the Vector API, spread over all cores. Each op lives in its own class. */
public final class CpuOps implements Ops {

    private final Parallel parallel;
    private final Matmul matmul;
    private final FlashAttention attention;
    private final SsdScan ssd;
    private final PagedAttention pagedAttention;
    /** --batch-invariant: every product through {@link InvariantMatmul}. */
    private final boolean batchInvariant;

    public CpuOps(Parallel parallel) {
        this(parallel, false);
    }

    /**
     * As above; {@code batchInvariant}: each product sums every output in one order whatever the
     * tokens ({@link InvariantMatmul}), so that a request's rows do not depend on the rows beside it;
     * the other ops already compute each sequence's rows on their own.
     */
    public CpuOps(Parallel parallel, boolean batchInvariant) {
        this.parallel = parallel;
        this.batchInvariant = batchInvariant;
        this.matmul = new Matmul(parallel);
        this.attention = new FlashAttention(parallel);
        this.ssd = new SsdScan(parallel);
        this.pagedAttention = new PagedAttention(attention, parallel);
    }

    public CpuOps() {
        this(Parallel.allCores());
    }

    public Parallel parallel() {
        return parallel;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public boolean batchInvariant() {
        return batchInvariant;
    }

    @Override
    public void matmul(float[] x, int tokens, Matrix w, float[] out) {
        if (batchInvariant) {
            InvariantMatmul.multiply(parallel, x, tokens, w, out);
        } else {
            matmul.multiply(x, tokens, w, out);
        }
    }

    @Override
    public void rmsNorm(float[] x, int tokens, int dim, float[] weight, float eps, float[] out) {
        Norms.rmsNorm(parallel, x, tokens, dim, weight, eps, out);
    }

    @Override
    public void gatedRmsNorm(float[] y, float[] z, int tokens, int dim, int groupSize, float[] weight, float eps,
            float[] out) {
        Norms.gatedRmsNorm(parallel, y, z, tokens, dim, groupSize, weight, eps, out);
    }

    @Override
    public void causalConv1d(float[] input, int tokens, int channels, float[] weight, float[] bias, int kernel,
            float[] state, float[] out) {
        Conv1d.causalSilu(parallel, input, tokens, channels, weight, bias, kernel, state, out);
    }

    @Override
    public void ssdScan(SsmShape shape, int tokens, int chunkSize, float[] x, float[] dt, float[] A, float[] B,
            float[] C, float[] D, float[] state, float[] y) {
        ssd.scan(shape, tokens, chunkSize, x, dt, A, B, C, D, state, y);
    }

    @Override
    public void ssmStep(SsmShape shape, float[] x, float[] dt, float[] A, float[] B, float[] C, float[] D,
            float[] state, float[] y) {
        ssd.step(shape, x, dt, A, B, C, D, state, y);
    }

    @Override
    public void attention(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys,
            float[] values, float[] out) {
        attention.forward(shape, tokens, past, scale, q, keys, values, out);
    }

    @Override
    public void pagedAttention(AttentionShape shape, int tokens, int past, float scale, float[] q,
            PagedKeyValues cache, int[] blockTable, float[] out) {
        pagedAttention.forward(shape, tokens, past, scale, q, cache, blockTable, out);
    }

    @Override
    public void rope(float[] x, int tokens, int heads, int headDim, int rotaryDim, float theta, int firstPosition) {
        Rope.apply(parallel, x, tokens, heads, headDim, rotaryDim, theta, firstPosition);
    }
}
