package dev.coil.engine.cpu;

/** Placeholder: RMSNorm and gated RMSNorm. */
final class Norms {
    static void rmsNorm(Parallel p, float[] x, int tokens, int dim, float[] weight, float eps, float[] out) {
        throw new UnsupportedOperationException("TODO");
    }

    static void gatedRmsNorm(Parallel p, float[] y, float[] z, int tokens, int dim, int groupSize, float[] weight, float eps, float[] out) {
        throw new UnsupportedOperationException("TODO");
    }
}
