package dev.coil.engine.ops;

/**
 * The op set a model's forward pass is written in. Activations are f32 arrays, row-major, one row
 * per token; weights are {@link Matrix} views in their storage dtype. Two implementations:
 * {@code cpu.CpuOps} (Vector API, all cores) and {@code ref.ReferenceOps} (plain double-precision
 * loops, the truth the tests compare against). Shapes are checked by callers; ops trust them.
 */
public interface Ops {

    /** A short name for logs and benchmark output ("cpu", "ref"). */
    String name();

    /**
     * True when every op computes a row the same way whatever rows share its call
     * ({@code --batch-invariant}): what an engine held to the mode asks of its ops. False unless an
     * implementation says so.
     */
    default boolean batchInvariant() {
        return false;
    }

    /**
     * Linear layer without bias: out[t, n] = Σ_k x[t, k] · w[n, k].
     * x: [tokens, w.cols], out: [tokens, w.rows] (overwritten).
     */
    void matmul(float[] x, int tokens, Matrix w, float[] out);

    /**
     * RMSNorm: out[t, i] = weight[i] · x[t, i] / sqrt(mean_i(x[t, i]²) + eps).
     * x, out: [tokens, dim] (out may be x); weight: [dim].
     */
    void rmsNorm(float[] x, int tokens, int dim, float[] weight, float eps, float[] out);

    /**
     * Gated RMSNorm of Mamba-2 (gate before norm): g = y · silu(z), then RMS over each contiguous
     * group of {@code groupSize} channels (groupSize == dim: one group, HF's MambaRMSNormGated),
     * times weight. y, z, out: [tokens, dim] (out may be y); weight: [dim].
     */
    void gatedRmsNorm(float[] y, float[] z, int tokens, int dim, int groupSize, float[] weight, float eps, float[] out);

    /**
     * Depthwise causal conv1d over the token axis followed by SiLU, carrying state across calls.
     * input, out: [tokens, channels] (out must not be input);
     * weight: [channels, kernel] (weight[c, kernel-1] multiplies the current token);
     * bias: [channels] or null;
     * state: [kernel-1, channels], the previous kernel-1 inputs, oldest first (zeros at the start
     * of a sequence); updated in place to the last kernel-1 inputs seen.
     */
    void causalConv1d(float[] input, int tokens, int channels, float[] weight, float[] bias, int kernel,
            float[] state, float[] out);

    /**
     * Mamba-2 selective scan over a prompt chunk (prefill), per head h with group g = h / (heads/groups):
     *   S_t = exp(dt_t·A[h]) · S_{t-1} + dt_t · x_t ⊗ B_t      (S: [headDim, stateSize])
     *   y_t = S_t · C_t + D[h] · x_t
     * x: [tokens, heads, headDim]; dt: [tokens, heads] (already softplus'd and clamped);
     * A: [heads] (negative); B, C: [tokens, groups, stateSize]; D: [heads];
     * state: [heads, headDim, stateSize], the state before the first token, updated in place to the
     * state after the last; y: [tokens, heads, headDim].
     * The CPU implementation uses the chunked SSD form with {@code chunkSize}; the reference is the
     * sequential recurrence. Both give the same result up to rounding.
     */
    void ssdScan(SsmShape shape, int tokens, int chunkSize, float[] x, float[] dt, float[] A, float[] B, float[] C,
            float[] D, float[] state, float[] y);

    /**
     * One decode step of the same recurrence for a single token (the selective state update).
     * x: [heads, headDim]; dt: [heads]; B, C: [groups, stateSize]; state updated in place; y: [heads, headDim].
     */
    void ssmStep(SsmShape shape, float[] x, float[] dt, float[] A, float[] B, float[] C, float[] D, float[] state,
            float[] y);

    /**
     * Causal attention of {@code tokens} new queries against a key/value cache that already holds
     * them: query t sits at position past + t and sees keys 0 .. past + t.
     * q: [tokens, queryHeads, headDim]; keys, values: [≥ past + tokens, kvHeads, headDim];
     * query head h uses kv head h / (queryHeads / kvHeads) (GQA);
     * out: [tokens, queryHeads, headDim]; scores are q·k · scale.
     * The CPU implementation is flash-style (tiled, online softmax, never the full score matrix).
     */
    void attention(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys, float[] values,
            float[] out);

    /**
     * {@link #attention} over a paged cache: the keys and values of position p sit in
     * {@code cache} at block blockTable[p / blockSize]. The cache already holds the new tokens'
     * keys and values (positions past .. past + tokens), stored in its dtype.
     */
    void pagedAttention(AttentionShape shape, int tokens, int past, float scale, float[] q, PagedKeyValues cache,
            int[] blockTable, float[] out);

    /**
     * Rotary position embedding, rotate-half (NeoX) form, on the first {@code rotaryDim} dims of each
     * head (pairs i and i + rotaryDim/2), in place. x: [tokens, heads, headDim]; token t is at
     * position firstPosition + t; inv_freq[i] = theta^(-2i/rotaryDim), computed in f32 as HF does.
     */
    void rope(float[] x, int tokens, int heads, int headDim, int rotaryDim, float theta, int firstPosition);
}
