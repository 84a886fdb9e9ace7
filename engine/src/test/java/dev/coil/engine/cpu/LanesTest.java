package dev.coil.engine.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.Random;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

/** The vector sum and exponential that give the same bits everywhere: their order, accuracy and edges. */
class LanesTest {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;

    @Test
    void sumFoldsTheUpperHalfOntoTheLowerDownToLaneZero() {
        Random random = new Random(3);
        for (int trial = 0; trial < 1000; trial++) {
            float[] lanes = new float[FLOATS.length()];
            for (int i = 0; i < lanes.length; i++) {
                lanes[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(7) - 3));
            }
            float[] folded = lanes.clone();
            for (int half = folded.length / 2; half >= 1; half /= 2) {
                for (int i = 0; i < half; i++) {
                    folded[i] += folded[i + half];
                }
            }
            assertThat(Lanes.sum(FloatVector.fromArray(FLOATS, lanes, 0))).isEqualTo(folded[0]);
        }
    }

    @Test
    void expIsWithinTwoUlpsOfTheDoubleExponential() {
        float[] x = new float[FLOATS.length()];
        float[] out = new float[FLOATS.length()];
        double worst = 0;
        for (float start = -87f; start < 88.5f; start += 0.0173f * x.length) {
            for (int i = 0; i < x.length; i++) {
                x[i] = start + 0.0173f * i;
            }
            Lanes.exp(FloatVector.fromArray(FLOATS, x, 0)).intoArray(out, 0);
            for (int i = 0; i < x.length; i++) {
                double exact = Math.exp(x[i]);
                if (x[i] > 88.72f) {
                    continue; // beyond the largest float
                }
                worst = Math.max(worst, Math.abs(out[i] - exact) / Math.ulp((float) exact));
            }
        }
        assertThat(worst).as("largest error in ulps").isLessThanOrEqualTo(2.0);
    }

    @Test
    void expOfTheEdges() {
        float[] x = new float[FLOATS.length()];
        float[] edges = {Float.NEGATIVE_INFINITY, -1000f, -88f, 0f, -0f, 89f, Float.POSITIVE_INFINITY, Float.NaN};
        float[] expected = {0f, 0f, 0f, 1f, 1f, Float.POSITIVE_INFINITY, Float.POSITIVE_INFINITY, Float.NaN};
        float[] out = new float[FLOATS.length()];
        for (int e = 0; e < edges.length; e++) {
            Arrays.fill(x, edges[e]);
            Lanes.exp(FloatVector.fromArray(FLOATS, x, 0)).intoArray(out, 0);
            if (Float.isNaN(expected[e])) {
                assertThat(out[0]).as("e^NaN").isNaN();
            } else {
                assertThat(out[0]).as("e^%s", edges[e]).isEqualTo(expected[e]);
            }
        }
    }
}
