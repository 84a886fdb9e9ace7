package dev.coil.engine.cache;

/**
 * The Mamba state of a sequence after its first {@code position} tokens, kept by the prefix cache.
 * The full blocks before it are found through the block index; the positions past the last full
 * block (the tail, fewer than blockSize) travel with the snapshot as raw K/V rows, so that a hit
 * copies them into a fresh block of its own.
 *
 * @param parentHash chain hash of the full blocks before position (PrefixHash.ROOT for none)
 * @param tailTokens the tokens after those blocks, up to position
 * @param states     the slot's Mamba states, copied where the store keeps them
 * @param tailRows   per model block: {keys, values} rows of the tail for attention blocks, else null
 */
record StateSnapshot(int position, long parentHash, int[] tailTokens, StateStore.SlotCopy states,
        byte[][][] tailRows) {

    int bytes() {
        long total = 64 + 4L * tailTokens.length + states.bytes();
        for (byte[][] rows : tailRows) {
            total += rows == null ? 0 : rows[0].length + rows[1].length;
        }
        return (int) Math.min(Integer.MAX_VALUE, total);
    }
}
