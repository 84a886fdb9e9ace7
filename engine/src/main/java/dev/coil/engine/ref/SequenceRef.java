package dev.coil.engine.ref;

import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.SsmShape;
import java.util.Arrays;

/**
 * The sequence ops as their definitions read, in double precision: the Mamba-2 recurrence one token
 * at a time, and causal attention with the whole score row of each query.
 */
public final class SequenceRef {

    private SequenceRef() {}

    /**
     * Per head h with group g = h / (heads / groups), for t = 0 .. tokens-1:
     *   S_t = exp(dt_t·A[h]) · S_{t-1} + dt_t · x_t ⊗ B_t[g]
     *   y_t = S_t · C_t[g] + D[h] · x_t
     * x, y: [tokens, heads, headDim]; dt: [tokens, heads]; B, C: [tokens, groups, stateSize];
     * state: [heads, headDim, stateSize], read as S_{-1} and overwritten with the last S_t.
     * One token (tokens = 1) is the decode step.
     */
    public static void scan(SsmShape shape, int tokens, float[] x, float[] dt, float[] A, float[] B, float[] C,
            float[] D, float[] state, float[] y) {
        int heads = shape.heads();
        int headDim = shape.headDim();
        int groups = shape.groups();
        int stateSize = shape.stateSize();
        double[] running = new double[headDim * stateSize];
        for (int h = 0; h < heads; h++) {
            int g = shape.groupOfHead(h);
            int stateBase = h * headDim * stateSize;
            for (int i = 0; i < running.length; i++) {
                running[i] = state[stateBase + i];
            }
            for (int t = 0; t < tokens; t++) {
                double step = dt[t * heads + h];
                double decay = Math.exp(step * A[h]);
                int xBase = (t * heads + h) * headDim;
                int bcBase = (t * groups + g) * stateSize;
                for (int p = 0; p < headDim; p++) {
                    double input = step * x[xBase + p];
                    double sum = 0;
                    for (int n = 0; n < stateSize; n++) {
                        int i = p * stateSize + n;
                        running[i] = decay * running[i] + input * B[bcBase + n];
                        sum += running[i] * C[bcBase + n];
                    }
                    y[xBase + p] = (float) (sum + (double) D[h] * x[xBase + p]);
                }
            }
            for (int i = 0; i < running.length; i++) {
                state[stateBase + i] = (float) running[i];
            }
        }
    }

    /**
     * Causal attention: query t (position past + t) of head h attends to keys 0 .. past + t of kv
     * head h / (queryHeads / kvHeads): out = softmax(q·kᵀ · scale) · v over that whole row.
     * q, out: [tokens, queryHeads, headDim]; keys, values: [≥ past + tokens, kvHeads, headDim].
     */
    public static void attention(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys,
            float[] values, float[] out) {
        int queryHeads = shape.queryHeads();
        int kvHeads = shape.kvHeads();
        int headDim = shape.headDim();
        double[] scores = new double[past + tokens];
        double[] mixed = new double[headDim];
        for (int t = 0; t < tokens; t++) {
            int visible = past + t + 1;
            for (int h = 0; h < queryHeads; h++) {
                int kv = shape.kvHeadOf(h);
                int qBase = (t * queryHeads + h) * headDim;
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < visible; j++) {
                    int kBase = (j * kvHeads + kv) * headDim;
                    double dot = 0;
                    for (int d = 0; d < headDim; d++) {
                        dot += (double) q[qBase + d] * keys[kBase + d];
                    }
                    scores[j] = dot * scale;
                    max = Math.max(max, scores[j]);
                }
                double total = 0;
                for (int j = 0; j < visible; j++) {
                    scores[j] = Math.exp(scores[j] - max);
                    total += scores[j];
                }
                Arrays.fill(mixed, 0);
                for (int j = 0; j < visible; j++) {
                    int vBase = (j * kvHeads + kv) * headDim;
                    double weight = scores[j] / total;
                    for (int d = 0; d < headDim; d++) {
                        mixed[d] += weight * values[vBase + d];
                    }
                }
                for (int d = 0; d < headDim; d++) {
                    out[qBase + d] = (float) mixed[d];
                }
            }
        }
    }
}
