package dev.coil.engine.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.ref.LinearRef;
import java.util.Random;
import org.junit.jupiter.api.Test;

class RopeTest {

    private static final int[] TOKENS = {1, 2, 5, 33};
    private static final double RELATIVE = 1e-5;

    private final CpuOps cpu = new CpuOps(new Parallel(3));

    @Test
    void referenceRotatesTheFirstPairByThePosition() {
        // headDim 4, rotaryDim 2: inv_freq[0] = 1, so position 1 turns (x0, x1) by 1 radian; dims 2, 3 stay.
        float[] x = {1, 0, 7, 8};

        LinearRef.rope(x, 1, 1, 4, 2, 10000, 1);

        assertThat(x[0]).isCloseTo((float) Math.cos(1), within(1e-7f));
        assertThat(x[1]).isCloseTo((float) Math.sin(1), within(1e-7f));
        assertThat(x[2]).isEqualTo(7f);
        assertThat(x[3]).isEqualTo(8f);
    }

    @Test
    void referencePairsEachDimWithTheOneHalfARotaryDimAway() {
        // rotaryDim 4, theta 100: inv_freq = (1, 100^-1/2 = 0.1); position 2 gives angles 2 and 0.2 to pairs (0, 2) and (1, 3).
        float[] x = {1, 2, 3, 4};

        LinearRef.rope(x, 1, 1, 4, 4, 100, 2);

        double c0 = Math.cos(2);
        double s0 = Math.sin(2);
        double c1 = Math.cos(0.2);
        double s1 = Math.sin(0.2);
        assertThat(x[0]).isCloseTo((float) (1 * c0 - 3 * s0), within(1e-6f));
        assertThat(x[2]).isCloseTo((float) (3 * c0 + 1 * s0), within(1e-6f));
        assertThat(x[1]).isCloseTo((float) (2 * c1 - 4 * s1), within(1e-6f));
        assertThat(x[3]).isCloseTo((float) (4 * c1 + 2 * s1), within(1e-6f));
    }

    @Test
    void matchesReference() {
        Random random = new Random(47);
        for (int headDim : new int[] {2, 6, 64, 80}) {
            for (int rotaryDim : new int[] {headDim, headDim / 2 / 2 * 2}) {
                for (int heads : new int[] {1, 3}) {
                    for (int tokens : TOKENS) {
                        for (int firstPosition : new int[] {0, 7, 4000}) {
                            float[] x = LinearTestSupport.uniform(random, tokens * heads * headDim, -2, 2);
                            float[] expected = x.clone();
                            LinearRef.rope(expected, tokens, heads, headDim, rotaryDim, 10000, firstPosition);
                            float[] actual = x.clone();
                            cpu.rope(actual, tokens, heads, headDim, rotaryDim, 1e4f, firstPosition);
                            LinearTestSupport.assertClose(actual, expected, pairScale(x, headDim, rotaryDim), RELATIVE,
                                    "headDim " + headDim + ", rotary " + rotaryDim + ", heads " + heads + ", tokens "
                                            + tokens + ", from " + firstPosition);
                        }
                    }
                }
            }
        }
    }

    /** A rotation keeps each pair's length and leaves the dims past rotaryDim bit-identical. */
    @Test
    void rotatesPairsWithoutChangingTheirLength() {
        Random random = new Random(53);
        int tokens = 9;
        int heads = 4;
        int headDim = 96;
        int rotaryDim = 64;
        float[] x = LinearTestSupport.uniform(random, tokens * heads * headDim, -2, 2);
        float[] rotated = x.clone();

        cpu.rope(rotated, tokens, heads, headDim, rotaryDim, 1e6f, 123);

        for (int row = 0; row < tokens * heads; row++) {
            int base = row * headDim;
            for (int i = 0; i < rotaryDim / 2; i++) {
                double before = Math.hypot(x[base + i], x[base + i + rotaryDim / 2]);
                double after = Math.hypot(rotated[base + i], rotated[base + i + rotaryDim / 2]);
                assertThat(after).isCloseTo(before, within(1e-5 * before + 1e-7));
            }
            for (int i = rotaryDim; i < headDim; i++) {
                assertThat(rotated[base + i]).isEqualTo(x[base + i]);
            }
        }
    }

    /** The attention score of a rotated query and key depends only on their distance. */
    @Test
    void scoresDependOnlyOnRelativePosition() {
        Random random = new Random(59);
        int headDim = 64;
        float[] q = LinearTestSupport.uniform(random, headDim, -1, 1);
        float[] k = LinearTestSupport.uniform(random, headDim, -1, 1);

        double near = rotatedScore(q, 10, k, 3);
        double far = rotatedScore(q, 1007, k, 1000);

        assertThat(far).isCloseTo(near, within(1e-4));
    }

    private double rotatedScore(float[] q, int queryPosition, float[] k, int keyPosition) {
        float[] rq = q.clone();
        float[] rk = k.clone();
        cpu.rope(rq, 1, 1, q.length, q.length, 10000, queryPosition);
        cpu.rope(rk, 1, 1, k.length, k.length, 10000, keyPosition);
        double score = 0;
        for (int i = 0; i < q.length; i++) {
            score += (double) rq[i] * rk[i];
        }
        return score;
    }

    /** Each output of a pair can be off by f32 rounding of the pair's length; untouched dims must be exact. */
    private static double[] pairScale(float[] x, int headDim, int rotaryDim) {
        double[] scale = new double[x.length];
        int half = rotaryDim / 2;
        for (int base = 0; base < x.length; base += headDim) {
            for (int i = 0; i < half; i++) {
                double length = Math.abs(x[base + i]) + Math.abs(x[base + i + half]) + Float.MIN_NORMAL;
                scale[base + i] = length;
                scale[base + i + half] = length;
            }
        }
        return scale;
    }
}
