package dev.coil.engine.ref;

import dev.coil.engine.ops.Matrix;

/**
 * Reference matmul, norms, causal conv1d and rotary embedding: scalar loops over the formulas of
 * {@link dev.coil.engine.ops.Ops}, accumulated in double, rounded to f32 once per output.
 */
public final class LinearRef {

    private LinearRef() {}

    /** out[t, n] = Σ_k x[t, k] · w[n, k]; x: [tokens, cols], out: [tokens, rows]. */
    public static void matmul(float[] x, int tokens, Matrix w, float[] out) {
        for (int t = 0; t < tokens; t++) {
            for (int n = 0; n < w.rows(); n++) {
                double sum = 0;
                for (int k = 0; k < w.cols(); k++) {
                    sum += (double) x[t * w.cols() + k] * w.get(n, k);
                }
                out[t * w.rows() + n] = (float) sum;
            }
        }
    }

    /** out[t, i] = weight[i] · x[t, i] / sqrt(mean_i(x[t, i]²) + eps). */
    public static void rmsNorm(float[] x, int tokens, int dim, float[] weight, float eps, float[] out) {
        for (int t = 0; t < tokens; t++) {
            int row = t * dim;
            double squares = 0;
            for (int i = 0; i < dim; i++) {
                squares += (double) x[row + i] * x[row + i];
            }
            double inverseRms = 1.0 / Math.sqrt(squares / dim + eps);
            for (int i = 0; i < dim; i++) {
                out[row + i] = (float) (weight[i] * (x[row + i] * inverseRms));
            }
        }
    }

    /** g = y · silu(z); out = weight · g / sqrt(mean over each group of g² + eps). */
    public static void gatedRmsNorm(float[] y, float[] z, int tokens, int dim, int groupSize, float[] weight,
            float eps, float[] out) {
        double[] gated = new double[groupSize];
        for (int t = 0; t < tokens; t++) {
            for (int group = 0; group < dim; group += groupSize) {
                int start = t * dim + group;
                double squares = 0;
                for (int i = 0; i < groupSize; i++) {
                    gated[i] = y[start + i] * silu(z[start + i]);
                    squares += gated[i] * gated[i];
                }
                double inverseRms = 1.0 / Math.sqrt(squares / groupSize + eps);
                for (int i = 0; i < groupSize; i++) {
                    out[start + i] = (float) (weight[group + i] * (gated[i] * inverseRms));
                }
            }
        }
    }

    /**
     * out[t, c] = silu(bias[c] + Σ_j weight[c, j] · e[t + j, c]) where e is the previous kernel-1
     * inputs (the state) followed by this call's inputs; the state becomes the last kernel-1 rows of e.
     */
    public static void causalConv1d(float[] input, int tokens, int channels, float[] weight, float[] bias, int kernel,
            float[] state, float[] out) {
        int history = kernel - 1;
        float[] extended = new float[(history + tokens) * channels];
        System.arraycopy(state, 0, extended, 0, history * channels);
        System.arraycopy(input, 0, extended, history * channels, tokens * channels);
        for (int t = 0; t < tokens; t++) {
            for (int c = 0; c < channels; c++) {
                double sum = bias == null ? 0 : bias[c];
                for (int j = 0; j < kernel; j++) {
                    sum += (double) weight[c * kernel + j] * extended[(t + j) * channels + c];
                }
                out[t * channels + c] = (float) silu(sum);
            }
        }
        System.arraycopy(extended, tokens * channels, state, 0, history * channels);
    }

    /**
     * Rotate-half rotary embedding. The frequencies and angles are rounded to f32 exactly as HF
     * computes them (inv_freq = 1 / theta^(2i/d) and position · inv_freq in f32); the rotation is
     * then done in double.
     */
    public static void rope(float[] x, int tokens, int heads, int headDim, int rotaryDim, float theta,
            int firstPosition) {
        int half = rotaryDim / 2;
        for (int t = 0; t < tokens; t++) {
            float position = firstPosition + t;
            for (int i = 0; i < half; i++) {
                float exponent = (float) (2 * i) / rotaryDim;
                float inverseFrequency = 1.0f / (float) Math.pow(theta, exponent);
                float angle = position * inverseFrequency;
                double cos = Math.cos(angle);
                double sin = Math.sin(angle);
                for (int h = 0; h < heads; h++) {
                    int first = (t * heads + h) * headDim + i;
                    int second = first + half;
                    double x1 = x[first];
                    double x2 = x[second];
                    x[first] = (float) (x1 * cos - x2 * sin);
                    x[second] = (float) (x2 * cos + x1 * sin);
                }
            }
        }
    }

    private static double silu(double v) {
        return v / (1 + Math.exp(-v));
    }
}
