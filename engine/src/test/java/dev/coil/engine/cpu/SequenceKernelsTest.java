package dev.coil.engine.cpu;

import static dev.coil.engine.cpu.SequenceKernels.LANES;
import static dev.coil.engine.cpu.SequenceKernels.SPECIES;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

class SequenceKernelsTest {

    @Test
    void vectorExpIsWithinARoundingOfMathExp() {
        SplittableRandom random = new SplittableRandom(11);
        float[] arguments = new float[4096];
        for (int i = 0; i < arguments.length; i++) {
            arguments[i] = (float) random.nextDouble(-87, 88);
        }
        arguments[0] = 0f;
        arguments[1] = -1e-7f;
        arguments[2] = 1e-7f;
        float[] results = new float[arguments.length];
        for (int i = 0; i < arguments.length; i += LANES) {
            SequenceKernels.exp(FloatVector.fromArray(SPECIES, arguments, i)).intoArray(results, i);
        }
        for (int i = 0; i < arguments.length; i++) {
            double expected = Math.exp(arguments[i]);
            assertThat((double) results[i]).as("exp(%s)", arguments[i]).isCloseTo(expected, within(3e-7 * expected));
        }
        assertThat(results[0]).isEqualTo(1f);
    }

    @Test
    void vectorExpOfVeryNegativeArgumentsIsZero() {
        float[] arguments = new float[LANES];
        for (int i = 0; i < LANES; i++) {
            arguments[i] = i % 2 == 0 ? Float.NEGATIVE_INFINITY : -100f - i;
        }
        float[] results = new float[LANES];
        SequenceKernels.exp(FloatVector.fromArray(SPECIES, arguments, 0)).intoArray(results, 0);
        assertThat(results).containsOnly(0f);
    }

    @Test
    void multiplyAddMatchesTheDefinitionForOddShapesOffsetsAndStrides() {
        SplittableRandom random = new SplittableRandom(3);
        for (int rows = 1; rows <= 9; rows++) {
            for (int cols : new int[] {1, 7, LANES, LANES + 3, 2 * LANES, 3 * LANES + 5, 4 * LANES + 3}) {
                for (int depth : new int[] {0, 1, 6}) {
                    for (boolean accumulate : new boolean[] {false, true}) {
                        checkProduct(random, rows, cols, depth, accumulate);
                    }
                }
            }
        }
    }

    @Test
    void dotProductsMatchTheDefinition() {
        SplittableRandom random = new SplittableRandom(8);
        for (int count : new int[] {0, 1, 5, LANES, 2 * LANES + 3, 64}) {
            int stride = count + 3;
            float[] a = values(random, 2 + count);
            float[] b = values(random, 1 + 4 * stride);
            float[] four = new float[6];

            SequenceKernels.dotFour(a, 2, b, 1, stride, count, four, 1);

            for (int m = 0; m < 4; m++) {
                double expected = 0;
                for (int i = 0; i < count; i++) {
                    expected += (double) a[2 + i] * b[1 + m * stride + i];
                }
                assertThat((double) four[1 + m]).as("dotFour %d of length %d", m, count)
                        .isCloseTo(expected, within(1e-5));
                assertThat((double) SequenceKernels.dot(a, 2, b, 1 + m * stride, count))
                        .as("dot %d of length %d", m, count).isCloseTo(expected, within(1e-5));
            }
            assertThat(four[0]).isZero();
            assertThat(four[5]).isZero();
        }
    }

    @Test
    void eightDotProductsMatchTheDefinition() {
        // The build's eight-lane run (-XX:UseAVX=2) names the architecture; on x86 it must have 8 lanes.
        String eightLaneRun = System.getProperty("coil.test.eightLanes", "");
        if (eightLaneRun.equals("amd64") || eightLaneRun.equals("x86_64")) {
            assertThat(SequenceKernels.LANES).as("lanes in the eight-lane run").isEqualTo(8);
        }
        assumeTrue(SequenceKernels.EIGHT_LANES, "dotEight is written for eight-lane vectors");
        SplittableRandom random = new SplittableRandom(9);
        for (int count : new int[] {0, 1, 5, LANES, 2 * LANES + 3, 64, 128}) {
            int stride = count + 3;
            float[] a = values(random, 2 + count);
            float[] b = values(random, 1 + 8 * stride);
            float[] eight = new float[10];

            SequenceKernels.dotEight(a, 2, b, 1, stride, count, eight, 1);

            for (int m = 0; m < 8; m++) {
                double expected = 0;
                for (int i = 0; i < count; i++) {
                    expected += (double) a[2 + i] * b[1 + m * stride + i];
                }
                assertThat((double) eight[1 + m]).as("dotEight %d of length %d", m, count)
                        .isCloseTo(expected, within(1e-5));
            }
            assertThat(eight[0]).isZero();
            assertThat(eight[9]).isZero();
        }
    }

    private static void checkProduct(SplittableRandom random, int rows, int cols, int depth, boolean accumulate) {
        int aOffset = 3;
        int aStride = depth + 2;
        int bOffset = 5;
        int bStride = cols + 1;
        int outOffset = 2;
        int outStride = cols + 4;
        float[] a = values(random, aOffset + rows * aStride);
        float[] b = values(random, bOffset + Math.max(depth, 1) * bStride);
        float[] out = values(random, outOffset + rows * outStride);
        float[] before = out.clone();

        SequenceKernels.multiplyAdd(rows, cols, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset,
                outStride, accumulate);

        for (int i = 0; i < out.length; i++) {
            int r = (i - outOffset) / outStride;
            int c = (i - outOffset) % outStride;
            if (i < outOffset || r >= rows || c >= cols) {
                assertThat(out[i]).as("untouched element %d", i).isEqualTo(before[i]);
                continue;
            }
            double expected = accumulate ? before[i] : 0;
            for (int k = 0; k < depth; k++) {
                expected += (double) a[aOffset + r * aStride + k] * b[bOffset + k * bStride + c];
            }
            assertThat((double) out[i]).as("out[%d, %d] of %dx%dx%d", r, c, rows, cols, depth)
                    .isCloseTo(expected, within(1e-5));
        }
    }

    private static float[] values(SplittableRandom random, int count) {
        float[] values = new float[count];
        for (int i = 0; i < count; i++) {
            values[i] = (float) random.nextDouble(-1, 1);
        }
        return values;
    }
}
