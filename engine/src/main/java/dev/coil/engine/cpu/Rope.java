package dev.coil.engine.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Rotary position embedding, rotate-half form: within each head, dims i and i + rotaryDim/2
 * (i < rotaryDim/2) are rotated by the angle position · inv_freq[i]; dims from rotaryDim on are
 * left alone. Frequencies and angles are rounded to f32 like HF's implementation so positions far
 * into a long context land on the same angles the model was trained with.
 */
final class Rope {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = FLOATS.length();
    /** Rotated elements one parallel piece should cover at least. */
    private static final int MIN_ELEMENTS_PER_PIECE = 1 << 14;

    private Rope() {}

    static void apply(Parallel parallel, float[] x, int tokens, int heads, int headDim, int rotaryDim, float theta,
            int firstPosition) {
        int half = rotaryDim / 2;
        if (half == 0 || tokens == 0) {
            return;
        }
        float[] inverseFrequency = new float[half];
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / rotaryDim;
            inverseFrequency[i] = 1.0f / (float) Math.pow(theta, exponent);
        }
        int minTokens = Math.max(1, MIN_ELEMENTS_PER_PIECE / (heads * rotaryDim));
        parallel.forRange(tokens, minTokens, (start, end) -> {
            float[] cos = new float[half];
            float[] sin = new float[half];
            for (int t = start; t < end; t++) {
                float position = firstPosition + t;
                for (int i = 0; i < half; i++) {
                    float angle = position * inverseFrequency[i];
                    cos[i] = (float) Math.cos(angle);
                    sin[i] = (float) Math.sin(angle);
                }
                for (int h = 0; h < heads; h++) {
                    rotate(x, (t * heads + h) * headDim, half, cos, sin);
                }
            }
        });
    }

    /** x1' = x1·cos − x2·sin, x2' = x2·cos + x1·sin for x1 = x[base + i], x2 = x[base + half + i]. */
    private static void rotate(float[] x, int base, int half, float[] cos, float[] sin) {
        int i = 0;
        for (; i <= half - LANES; i += LANES) {
            FloatVector x1 = FloatVector.fromArray(FLOATS, x, base + i);
            FloatVector x2 = FloatVector.fromArray(FLOATS, x, base + half + i);
            FloatVector c = FloatVector.fromArray(FLOATS, cos, i);
            FloatVector s = FloatVector.fromArray(FLOATS, sin, i);
            x1.mul(c).sub(x2.mul(s)).intoArray(x, base + i);
            x2.mul(c).add(x1.mul(s)).intoArray(x, base + half + i);
        }
        for (; i < half; i++) {
            float x1 = x[base + i];
            float x2 = x[base + half + i];
            x[base + i] = x1 * cos[i] - x2 * sin[i];
            x[base + half + i] = x2 * cos[i] + x1 * sin[i];
        }
    }
}
