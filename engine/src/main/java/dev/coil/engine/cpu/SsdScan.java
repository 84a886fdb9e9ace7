package dev.coil.engine.cpu;

import dev.coil.engine.ops.SsmShape;

/** Placeholder: SSD chunked scan. */
final class SsdScan {
    SsdScan(Parallel parallel) {}

    void scan(SsmShape shape, int tokens, int chunkSize, float[] x, float[] dt, float[] A, float[] B, float[] C, float[] D, float[] state, float[] y) {
        throw new UnsupportedOperationException("TODO");
    }

    void step(SsmShape shape, float[] x, float[] dt, float[] A, float[] B, float[] C, float[] D, float[] state, float[] y) {
        throw new UnsupportedOperationException("TODO");
    }
}
