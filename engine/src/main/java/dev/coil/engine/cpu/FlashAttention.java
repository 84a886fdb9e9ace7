package dev.coil.engine.cpu;

import dev.coil.engine.ops.AttentionShape;

/** Placeholder: flash attention. */
final class FlashAttention {
    FlashAttention(Parallel parallel) {}

    void forward(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys, float[] values, float[] out) {
        throw new UnsupportedOperationException("TODO");
    }
}
