package dev.coil.engine.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/** RMSNorm and Mamba-2's gated, grouped RMSNorm, one token per row, tokens spread over the cores. */
final class Norms {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = FLOATS.length();
    /** Elements one parallel piece should cover at least. */
    private static final int MIN_ELEMENTS_PER_PIECE = 1 << 14;

    private Norms() {}

    /** out[t, i] = weight[i] · x[t, i] / sqrt(mean_i(x[t, i]²) + eps); out may be x. */
    static void rmsNorm(Parallel parallel, float[] x, int tokens, int dim, float[] weight, float eps, float[] out) {
        parallel.forRange(tokens, minTokens(dim), (start, end) -> {
            for (int t = start; t < end; t++) {
                int row = t * dim;
                scale(x, row, dim, weight, 0, inverseRms(x, row, dim, eps), out);
            }
        });
    }

    /**
     * g = y · silu(z), then each group of groupSize channels is divided by its own RMS and multiplied
     * by weight. out may be y: g is written to out first and scaled there.
     */
    static void gatedRmsNorm(Parallel parallel, float[] y, float[] z, int tokens, int dim, int groupSize,
            float[] weight, float eps, float[] out) {
        parallel.forRange(tokens, minTokens(dim), (start, end) -> {
            for (int t = start; t < end; t++) {
                int row = t * dim;
                gate(y, z, row, dim, out);
                for (int group = 0; group < dim; group += groupSize) {
                    int first = row + group;
                    scale(out, first, groupSize, weight, group, inverseRms(out, first, groupSize, eps), out);
                }
            }
        });
    }

    private static int minTokens(int dim) {
        return Math.max(1, MIN_ELEMENTS_PER_PIECE / Math.max(1, dim));
    }

    /** 1 / sqrt(mean(v[offset .. offset + n)²) + eps). */
    private static float inverseRms(float[] v, int offset, int n, float eps) {
        FloatVector s0 = FloatVector.zero(FLOATS);
        FloatVector s1 = s0;
        int i = 0;
        for (; i <= n - 2 * LANES; i += 2 * LANES) {
            FloatVector a = FloatVector.fromArray(FLOATS, v, offset + i);
            FloatVector b = FloatVector.fromArray(FLOATS, v, offset + i + LANES);
            s0 = a.fma(a, s0);
            s1 = b.fma(b, s1);
        }
        for (; i <= n - LANES; i += LANES) {
            FloatVector a = FloatVector.fromArray(FLOATS, v, offset + i);
            s0 = a.fma(a, s0);
        }
        float squares = Lanes.sum(s0.add(s1));
        for (; i < n; i++) {
            squares += v[offset + i] * v[offset + i];
        }
        return (float) (1.0 / Math.sqrt((double) squares / n + eps));
    }

    /** out[offset + i] = weight[weightOffset + i] · (v[offset + i] · inverseRms) for i < n. */
    private static void scale(float[] v, int offset, int n, float[] weight, int weightOffset, float inverseRms,
            float[] out) {
        int i = 0;
        for (; i <= n - LANES; i += LANES) {
            FloatVector.fromArray(FLOATS, v, offset + i).mul(inverseRms)
                    .mul(FloatVector.fromArray(FLOATS, weight, weightOffset + i))
                    .intoArray(out, offset + i);
        }
        for (; i < n; i++) {
            out[offset + i] = weight[weightOffset + i] * (v[offset + i] * inverseRms);
        }
    }

    /** out[offset + i] = y · silu(z) = y · z / (1 + e^−z) for i < n. */
    private static void gate(float[] y, float[] z, int offset, int n, float[] out) {
        int i = 0;
        for (; i <= n - LANES; i += LANES) {
            FloatVector g = FloatVector.fromArray(FLOATS, z, offset + i);
            FloatVector silu = g.div(Lanes.exp(g.neg()).add(1f));
            FloatVector.fromArray(FLOATS, y, offset + i).mul(silu).intoArray(out, offset + i);
        }
        for (; i < n; i++) {
            float g = z[offset + i];
            out[offset + i] = y[offset + i] * (g / (1f + (float) Math.exp(-g)));
        }
    }
}
