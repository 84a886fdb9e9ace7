package dev.coil.engine.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Depthwise causal conv1d over the token axis followed by SiLU (Mamba-2's short convolution).
 * Token t sees the sequence e = [state rows (the previous kernel-1 inputs, oldest first); input rows]
 * at rows t .. t+kernel-1, so out[t, c] = silu(bias[c] + Σ_j weight[c, j] · e[t + j, c]).
 * Channels are independent: vectors run along channels, cores take channel ranges.
 */
final class Conv1d {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = FLOATS.length();
    /** Multiply-adds one parallel piece should cover at least. */
    private static final int MIN_WORK_PER_PIECE = 1 << 15;

    private Conv1d() {}

    static void causalSilu(Parallel parallel, float[] input, int tokens, int channels, float[] weight, float[] bias,
            int kernel, float[] state, float[] out) {
        // weight [channels, kernel] → taps [kernel, channels], so one tap of many channels is one vector load.
        float[] taps = new float[kernel * channels];
        for (int c = 0; c < channels; c++) {
            for (int j = 0; j < kernel; j++) {
                taps[j * channels + c] = weight[c * kernel + j];
            }
        }
        long workPerChannel = (long) Math.max(1, tokens) * kernel;
        int minChannels = (int) Math.max(LANES, MIN_WORK_PER_PIECE / workPerChannel);
        parallel.forRange(channels, minChannels, (start, end) -> {
            for (int t = 0; t < tokens; t++) {
                convolve(input, t, channels, taps, bias, kernel, state, out, start, end);
            }
            shiftState(input, tokens, channels, kernel, state, start, end);
        });
    }

    /** out[t, c] for c in [start, end). */
    private static void convolve(float[] input, int t, int channels, float[] taps, float[] bias, int kernel,
            float[] state, float[] out, int start, int end) {
        int history = kernel - 1;
        int c = start;
        for (; c <= end - LANES; c += LANES) {
            FloatVector sum = bias == null ? FloatVector.zero(FLOATS) : FloatVector.fromArray(FLOATS, bias, c);
            for (int j = 0; j < kernel; j++) {
                int row = t + j;
                FloatVector value = row < history
                        ? FloatVector.fromArray(FLOATS, state, row * channels + c)
                        : FloatVector.fromArray(FLOATS, input, (row - history) * channels + c);
                sum = FloatVector.fromArray(FLOATS, taps, j * channels + c).fma(value, sum);
            }
            sum.div(Lanes.exp(sum.neg()).add(1f)).intoArray(out, t * channels + c);
        }
        for (; c < end; c++) {
            float sum = bias == null ? 0f : bias[c];
            for (int j = 0; j < kernel; j++) {
                int row = t + j;
                float value = row < history ? state[row * channels + c] : input[(row - history) * channels + c];
                sum += taps[j * channels + c] * value;
            }
            out[t * channels + c] = sum / (1f + (float) Math.exp(-sum));
        }
    }

    /**
     * state ← rows tokens .. tokens+kernel-2 of e, for channels [start, end). Row s reads row
     * tokens + s ≥ s, so ascending s never reads a state row it already overwrote.
     */
    private static void shiftState(float[] input, int tokens, int channels, int kernel, float[] state, int start,
            int end) {
        int history = kernel - 1;
        for (int s = 0; s < history; s++) {
            int row = tokens + s;
            if (row < history) {
                System.arraycopy(state, row * channels + start, state, s * channels + start, end - start);
            } else {
                System.arraycopy(input, (row - history) * channels + start, state, s * channels + start, end - start);
            }
        }
    }
}
