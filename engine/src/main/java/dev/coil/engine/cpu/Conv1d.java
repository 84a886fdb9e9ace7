package dev.coil.engine.cpu;

/** Placeholder: causal depthwise conv1d + SiLU. */
final class Conv1d {
    static void causalSilu(Parallel p, float[] input, int tokens, int channels, float[] weight, float[] bias, int kernel, float[] state, float[] out) {
        throw new UnsupportedOperationException("TODO");
    }
}
