package dev.coil.engine.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.ref.LinearRef;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class Conv1dTest {

    private static final int[] CHANNELS = {1, 3, 17, 63, 129};
    private static final int[] TOKENS = {1, 2, 5, 33};
    private static final double RELATIVE = 1e-5;

    private final CpuOps cpu = new CpuOps(new Parallel(3));

    @Test
    void referenceComputesHandExample() {
        // One channel, kernel 3, taps (1, 2, 3) from oldest to current, bias 0.5, previous inputs (10, 20).
        float[] state = {10, 20};
        float[] out = new float[2];

        LinearRef.causalConv1d(new float[] {1, -1}, 2, 1, new float[] {1, 2, 3}, new float[] {0.5f}, 3, state, out);

        // Token 0 sees (10, 20, 1): 10 + 40 + 3 + 0.5; token 1 sees (20, 1, -1): 20 + 2 - 3 + 0.5.
        assertThat(out[0]).isCloseTo(silu(53.5f), within(1e-5f));
        assertThat(out[1]).isCloseTo(silu(19.5f), within(1e-5f));
        assertThat(state).containsExactly(1f, -1f);
    }

    @Test
    void referenceShiftsStateByFewerTokensThanItHolds() {
        // Kernel 4 keeps three inputs; one new token drops only the oldest.
        float[] state = {1, 2, 3};
        float[] out = new float[1];

        LinearRef.causalConv1d(new float[] {4}, 1, 1, new float[] {1, 0, 0, 0}, null, 4, state, out);

        assertThat(out[0]).isCloseTo(silu(1), within(1e-7f));
        assertThat(state).containsExactly(2f, 3f, 4f);
    }

    @Test
    void matchesReference() {
        Random random = new Random(41);
        for (int kernel : new int[] {1, 2, 4}) {
            for (int channels : CHANNELS) {
                for (int tokens : TOKENS) {
                    for (boolean withBias : new boolean[] {true, false}) {
                        float[] input = LinearTestSupport.uniform(random, tokens * channels, -2, 2);
                        float[] weight = LinearTestSupport.uniform(random, channels * kernel, -1, 1);
                        float[] bias = withBias ? LinearTestSupport.uniform(random, channels, -1, 1) : null;
                        float[] state = LinearTestSupport.uniform(random, (kernel - 1) * channels, -2, 2);
                        String what = "kernel " + kernel + ", " + channels + " channels, " + tokens + " tokens, bias "
                                + withBias;

                        float[] expectedState = state.clone();
                        float[] expected = new float[tokens * channels];
                        LinearRef.causalConv1d(input, tokens, channels, weight, bias, kernel, expectedState, expected);
                        float[] actualState = state.clone();
                        float[] actual = new float[tokens * channels];
                        cpu.causalConv1d(input, tokens, channels, weight, bias, kernel, actualState, actual);

                        LinearTestSupport.assertClose(actual, expected,
                                scale(input, weight, bias, state, tokens, channels, kernel), RELATIVE, what);
                        assertThat(actualState).as(what).containsExactly(expectedState);
                    }
                }
            }
        }
    }

    /** Feeding a sequence in pieces of 1, 2, 3, ... tokens, carrying the state, equals one call over all of it. */
    @Test
    void splittingTheSequenceChangesNothing() {
        Random random = new Random(43);
        int channels = 67;
        int kernel = 4;
        int tokens = 40;
        float[] input = LinearTestSupport.uniform(random, tokens * channels, -2, 2);
        float[] weight = LinearTestSupport.uniform(random, channels * kernel, -1, 1);
        float[] bias = LinearTestSupport.uniform(random, channels, -1, 1);
        float[] initialState = LinearTestSupport.uniform(random, (kernel - 1) * channels, -2, 2);

        float[] wholeState = initialState.clone();
        float[] whole = new float[tokens * channels];
        cpu.causalConv1d(input, tokens, channels, weight, bias, kernel, wholeState, whole);

        float[] pieceState = initialState.clone();
        float[] pieces = new float[tokens * channels];
        float[] refState = initialState.clone();
        float[] refPieces = new float[tokens * channels];
        int start = 0;
        for (int size = 1; start < tokens; size++) {
            int count = Math.min(size, tokens - start);
            float[] piece = Arrays.copyOfRange(input, start * channels, (start + count) * channels);
            float[] out = new float[count * channels];
            cpu.causalConv1d(piece, count, channels, weight, bias, kernel, pieceState, out);
            System.arraycopy(out, 0, pieces, start * channels, out.length);
            LinearRef.causalConv1d(piece, count, channels, weight, bias, kernel, refState, out);
            System.arraycopy(out, 0, refPieces, start * channels, out.length);
            start += count;
        }

        double[] scale = scale(input, weight, bias, initialState, tokens, channels, kernel);
        LinearTestSupport.assertClose(pieces, whole, scale, RELATIVE, "cpu in pieces");
        assertThat(pieceState).containsExactly(wholeState);
        float[] reference = new float[tokens * channels];
        float[] referenceState = initialState.clone();
        LinearRef.causalConv1d(input, tokens, channels, weight, bias, kernel, referenceState, reference);
        LinearTestSupport.assertClose(refPieces, reference, scale, RELATIVE, "reference in pieces");
        assertThat(refState).containsExactly(referenceState);
        assertThat(wholeState).containsExactly(
                Arrays.copyOfRange(input, (tokens - kernel + 1) * channels, tokens * channels));
    }

    /** Σ |terms| of each pre-activation (SiLU's slope is at most 1.1): the size of the f32 rounding. */
    private static double[] scale(float[] input, float[] weight, float[] bias, float[] state, int tokens, int channels,
            int kernel) {
        int history = kernel - 1;
        double[] scale = new double[tokens * channels];
        for (int t = 0; t < tokens; t++) {
            for (int c = 0; c < channels; c++) {
                double sum = Float.MIN_NORMAL + (bias == null ? 0 : Math.abs(bias[c]));
                for (int j = 0; j < kernel; j++) {
                    int row = t + j;
                    float value = row < history ? state[row * channels + c] : input[(row - history) * channels + c];
                    sum += Math.abs(weight[c * kernel + j] * value);
                }
                scale[t * channels + c] = 1.1 * sum;
            }
        }
        return scale;
    }

    private static float silu(float v) {
        return (float) (v / (1 + Math.exp(-v)));
    }
}
