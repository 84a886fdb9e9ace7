package dev.coil.engine.cpu;

import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.PagedKeyValues;

/**
 * Attention over the paged cache: the sequence's positions are gathered, in block-table order, into
 * contiguous f32 rows, then {@link FlashAttention} runs over them. Prefill attention is compute
 * bound (every query row sweeps every key), so the gather's one extra pass costs little there.
 */
final class PagedAttention {

    private final FlashAttention attention;

    PagedAttention(FlashAttention attention) {
        this.attention = attention;
    }

    void forward(AttentionShape shape, int tokens, int past, float scale, float[] q, PagedKeyValues cache,
            int[] blockTable, float[] out) {
        int length = past + tokens;
        float[] keys = new float[length * cache.rowWidth()];
        float[] values = new float[keys.length];
        cache.gather(blockTable, 0, length, keys, values);
        attention.forward(shape, tokens, past, scale, q, keys, values, out);
    }
}
