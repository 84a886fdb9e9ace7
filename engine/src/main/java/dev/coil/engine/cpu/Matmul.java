package dev.coil.engine.cpu;

import dev.coil.engine.ops.Matrix;

/** Placeholder: Vector API matmul. */
final class Matmul {
    Matmul(Parallel parallel) {}

    void multiply(float[] x, int tokens, Matrix w, float[] out) {
        throw new UnsupportedOperationException("TODO");
    }
}
