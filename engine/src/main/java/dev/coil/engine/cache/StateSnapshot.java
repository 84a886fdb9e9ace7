package dev.coil.engine.cache;

/**
 * The Mamba state of a sequence after its first {@code position} tokens, kept by the prefix cache.
 * The full blocks before it are found through the block index; the positions past the last full
 * block (the tail, fewer than blockSize) travel with the snapshot as K/V rows in its copy, so that
 * a hit copies them into a fresh block of its own.
 *
 * @param parentHash chain hash of the full blocks before position (the salted root, PrefixHash.root, for none)
 * @param tailTokens the tokens after those blocks, up to position
 * @param copy       the slot's Mamba states and the tail's K/V rows, copied where the store keeps them
 */
record StateSnapshot(int position, long parentHash, int[] tailTokens, StateStore.SlotCopy copy) {

    int bytes() {
        return (int) Math.min(Integer.MAX_VALUE, 64 + 4L * tailTokens.length + copy.bytes());
    }
}
