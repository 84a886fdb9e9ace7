package dev.coil.engine.ref;

import dev.coil.engine.ops.Matrix;

/** Placeholder: reference linear ops. */
public final class LinearRef {
    public static void matmul(float[] x, int tokens, Matrix w, float[] out) { throw new UnsupportedOperationException("TODO"); }
    public static void rmsNorm(float[] x, int tokens, int dim, float[] weight, float eps, float[] out) { throw new UnsupportedOperationException("TODO"); }
    public static void gatedRmsNorm(float[] y, float[] z, int tokens, int dim, int groupSize, float[] weight, float eps, float[] out) { throw new UnsupportedOperationException("TODO"); }
    public static void causalConv1d(float[] input, int tokens, int channels, float[] weight, float[] bias, int kernel, float[] state, float[] out) { throw new UnsupportedOperationException("TODO"); }
    public static void rope(float[] x, int tokens, int heads, int headDim, int rotaryDim, float theta, int firstPosition) { throw new UnsupportedOperationException("TODO"); }
}
