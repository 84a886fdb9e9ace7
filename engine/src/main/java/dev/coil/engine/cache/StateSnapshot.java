package dev.coil.engine.cache;

import dev.coil.engine.model.LayerState;

/**
 * The Mamba state of a sequence after its first {@code position} tokens, kept by the prefix cache.
 * The full blocks before it are found through the block index; the positions past the last full
 * block (the tail, fewer than blockSize) travel with the snapshot as raw K/V rows, so that a hit
 * copies them into a fresh block of its own.
 *
 * @param parentHash chain hash of the full blocks before position (PrefixHash.ROOT for none)
 * @param tailTokens the tokens after those blocks, up to position
 * @param states     per model block: a copy of its Mamba state, null for other blocks
 * @param tailRows   per model block: {keys, values} rows of the tail for attention blocks, else null
 */
record StateSnapshot(int position, long parentHash, int[] tailTokens, LayerState.Mamba[] states,
        byte[][][] tailRows) {

    int bytes() {
        long total = 64 + 4L * tailTokens.length;
        for (LayerState.Mamba state : states) {
            total += state == null ? 0 : state.bytes();
        }
        for (byte[][] rows : tailRows) {
            total += rows == null ? 0 : rows[0].length + rows[1].length;
        }
        return (int) Math.min(Integer.MAX_VALUE, total);
    }
}
