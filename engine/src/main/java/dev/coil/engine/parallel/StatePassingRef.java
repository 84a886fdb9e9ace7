package dev.coil.engine.parallel;

import dev.coil.engine.ops.SsmShape;

/** The plain twin of {@link StatePassing}: the same equations in double precision, one element at a time. */
public final class StatePassingRef {

    private StatePassingRef() {
    }

    /** S_out[h, p, n] = exp(Σ_t dt[t, h]·A[h])·S_in[h, p, n] + S_local[h, p, n]. */
    public static float[] pass(SsmShape shape, int tokens, float[] dt, float[] A, float[] incoming, float[] local) {
        float[] outgoing = new float[shape.stateFloats()];
        int perHead = shape.headDim() * shape.stateSize();
        for (int h = 0; h < shape.heads(); h++) {
            double logDecay = 0;
            for (int t = 0; t < tokens; t++) {
                logDecay += (double) dt[t * shape.heads() + h] * A[h];
            }
            for (int i = h * perHead; i < (h + 1) * perHead; i++) {
                outgoing[i] = (float) (Math.exp(logDecay) * incoming[i] + local[i]);
            }
        }
        return outgoing;
    }

    /** y[t, h, p] += exp(Σ_{s ≤ t} dt[s, h]·A[h]) · Σ_n S_in[h, p, n]·C[t, g(h), n]. */
    public static void correct(SsmShape shape, int tokens, float[] dt, float[] A, float[] C, float[] incoming,
            float[] y) {
        int heads = shape.heads();
        int headDim = shape.headDim();
        int stateSize = shape.stateSize();
        for (int h = 0; h < heads; h++) {
            double logDecay = 0;
            for (int t = 0; t < tokens; t++) {
                logDecay += (double) dt[t * heads + h] * A[h];
                int g = shape.groupOfHead(h);
                for (int p = 0; p < headDim; p++) {
                    double sum = 0;
                    for (int n = 0; n < stateSize; n++) {
                        sum += (double) incoming[(h * headDim + p) * stateSize + n]
                                * C[(t * shape.groups() + g) * stateSize + n];
                    }
                    int index = (t * heads + h) * headDim + p;
                    y[index] = (float) (y[index] + Math.exp(logDecay) * sum);
                }
            }
        }
    }
}
