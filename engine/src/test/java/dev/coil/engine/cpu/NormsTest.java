package dev.coil.engine.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.ref.LinearRef;
import java.util.Random;
import org.junit.jupiter.api.Test;

class NormsTest {

    private static final int[] DIMS = {1, 3, 17, 63, 129, 383};
    private static final int[] TOKENS = {1, 2, 5, 33};
    private static final double RELATIVE = 1e-5;

    private final CpuOps cpu = new CpuOps(new Parallel(3));

    @Test
    void referenceRmsNormComputesHandExample() {
        // mean(3², 4²) = 12.5, so x / rms = (3, 4) / sqrt(12.5).
        float[] out = new float[2];
        LinearRef.rmsNorm(new float[] {3, 4}, 1, 2, new float[] {1, 2}, 0, out);

        assertThat(out[0]).isCloseTo((float) (3 / Math.sqrt(12.5)), within(1e-7f));
        assertThat(out[1]).isCloseTo((float) (8 / Math.sqrt(12.5)), within(1e-7f));
    }

    @Test
    void referenceGatedRmsNormComputesHandExample() {
        // silu(ln 3) = ln 3 · σ(ln 3) = 0.75 ln 3, so g = (1.5, 3) · ln 3: proportional to (1, 2).
        float ln3 = (float) Math.log(3);
        float[] y = {2, 4};
        float[] z = {ln3, ln3};
        float[] weight = {5, 7};

        float[] perChannel = new float[2];
        LinearRef.gatedRmsNorm(y, z, 1, 2, 1, weight, 0, perChannel);
        float[] oneGroup = new float[2];
        LinearRef.gatedRmsNorm(y, z, 1, 2, 2, weight, 0, oneGroup);

        // A group of one channel normalises to its sign; one group of two divides by sqrt((1 + 4) / 2).
        assertThat(perChannel[0]).isCloseTo(5f, within(1e-6f));
        assertThat(perChannel[1]).isCloseTo(7f, within(1e-6f));
        assertThat(oneGroup[0]).isCloseTo((float) (5 / Math.sqrt(2.5)), within(1e-6f));
        assertThat(oneGroup[1]).isCloseTo((float) (14 / Math.sqrt(2.5)), within(1e-6f));
    }

    @Test
    void rmsNormMatchesReference() {
        Random random = new Random(23);
        for (int dim : DIMS) {
            for (int tokens : TOKENS) {
                float[] x = LinearTestSupport.uniform(random, tokens * dim, -3, 3);
                float[] weight = LinearTestSupport.uniform(random, dim, -2, 2);
                float[] expected = new float[tokens * dim];
                LinearRef.rmsNorm(x, tokens, dim, weight, 1e-5f, expected);
                float[] actual = new float[tokens * dim];
                cpu.rmsNorm(x, tokens, dim, weight, 1e-5f, actual);
                LinearTestSupport.assertClose(actual, expected, scale(expected, weight, dim), RELATIVE,
                        "rmsNorm dim " + dim + ", " + tokens + " tokens");
            }
        }
    }

    @Test
    void gatedRmsNormMatchesReference() {
        Random random = new Random(29);
        for (int groupSize : new int[] {1, 3, 17, 64, 129}) {
            for (int groups : new int[] {1, 3, 8}) {
                int dim = groupSize * groups;
                for (int tokens : TOKENS) {
                    float[] y = LinearTestSupport.uniform(random, tokens * dim, -3, 3);
                    float[] z = LinearTestSupport.uniform(random, tokens * dim, -8, 8);
                    float[] weight = LinearTestSupport.uniform(random, dim, -2, 2);
                    float[] expected = new float[tokens * dim];
                    LinearRef.gatedRmsNorm(y, z, tokens, dim, groupSize, weight, 1e-6f, expected);
                    float[] actual = new float[tokens * dim];
                    cpu.gatedRmsNorm(y, z, tokens, dim, groupSize, weight, 1e-6f, actual);
                    LinearTestSupport.assertClose(actual, expected, scale(expected, weight, dim), RELATIVE,
                            "gatedRmsNorm group " + groupSize + " x " + groups + ", " + tokens + " tokens");
                }
            }
        }
    }

    @Test
    void normalisingInPlaceEqualsNormalisingIntoAnotherArray() {
        Random random = new Random(31);
        int tokens = 5;
        int dim = 129;
        float[] x = LinearTestSupport.uniform(random, tokens * dim, -3, 3);
        float[] z = LinearTestSupport.uniform(random, tokens * dim, -3, 3);
        float[] weight = LinearTestSupport.uniform(random, dim, -2, 2);

        float[] separate = new float[tokens * dim];
        cpu.rmsNorm(x, tokens, dim, weight, 1e-5f, separate);
        float[] inPlace = x.clone();
        cpu.rmsNorm(inPlace, tokens, dim, weight, 1e-5f, inPlace);
        assertThat(inPlace).containsExactly(separate);

        float[] gatedSeparate = new float[tokens * dim];
        cpu.gatedRmsNorm(x, z, tokens, dim, 43, weight, 1e-5f, gatedSeparate);
        float[] gatedInPlace = x.clone();
        cpu.gatedRmsNorm(gatedInPlace, z, tokens, dim, 43, weight, 1e-5f, gatedInPlace);
        assertThat(gatedInPlace).containsExactly(gatedSeparate);
    }

    /** Without eps, scaling a row by a power of two changes no rounding, so the output is bit-identical. */
    @Test
    void rmsNormIgnoresTheScaleOfItsInput() {
        Random random = new Random(37);
        int tokens = 3;
        int dim = 63;
        float[] x = LinearTestSupport.uniform(random, tokens * dim, -3, 3);
        float[] weight = LinearTestSupport.uniform(random, dim, -2, 2);
        float[] scaled = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            scaled[i] = 8 * x[i];
        }
        float[] out = new float[x.length];
        float[] scaledOut = new float[x.length];

        cpu.rmsNorm(x, tokens, dim, weight, 0, out);
        cpu.rmsNorm(scaled, tokens, dim, weight, 0, scaledOut);

        assertThat(scaledOut).containsExactly(out);
    }

    /** Elementwise tolerance: relative to the value plus a sliver of the row's weight scale. */
    private static double[] scale(float[] expected, float[] weight, int dim) {
        double[] scale = new double[expected.length];
        for (int i = 0; i < expected.length; i++) {
            scale[i] = Math.abs(expected[i]) + 1e-2 * Math.abs(weight[i % dim]) + Float.MIN_NORMAL;
        }
        return scale;
    }
}
