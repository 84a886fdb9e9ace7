package dev.coil.engine.cpu;

/** Placeholder: rotary embedding. */
final class Rope {
    static void apply(Parallel p, float[] x, int tokens, int heads, int headDim, int rotaryDim, float theta, int firstPosition) {
        throw new UnsupportedOperationException("TODO");
    }
}
