package dev.coil.engine.cache;

/**
 * Where the serving cache's memory lives: the K/V blocks of every attention layer and the Mamba
 * state slots, on the host ({@link HostStateStore}) or on a GPU. {@link ServingCache} decides which
 * block and slot belongs to whom; the store only holds and copies their contents.
 */
public interface StateStore extends AutoCloseable {

    /** Sets a slot's Mamba states to the state at the start of a sequence (zeros). */
    void clearSlot(int slot);

    /**
     * A copy of a sequence's state after its first {@code position} tokens, for the prefix cache:
     * the slot's Mamba states and every attention block's K/V rows of the tail, the positions of the
     * table past its last full block ([position - position % blockSize, position)). Kept where the
     * store keeps its memory (host arrays for the CPU, device memory for a GPU); null when the store
     * has no room for another copy now. Ordered after the work already queued on the slot and the
     * blocks, so that a GPU store need not wait for the device.
     */
    SlotCopy saveSlot(int slot, int[] table, int position);

    /**
     * Writes a copy (from {@link #saveSlot}, not yet released) back: its states into the slot, its
     * tail rows at the same positions of {@code table} (whose block there the caller owns).
     */
    void restoreSlot(int slot, int[] table, SlotCopy copy);

    @Override
    void close();

    /** A sequence's states and tail rows as {@link #saveSlot} copied them; held by the prefix cache. */
    interface SlotCopy {

        /** The position the copy was saved at. */
        int position();

        /** The bytes the copy holds. */
        long bytes();

        /** Gives the copy's memory back to its store; the copy is not restored after this. */
        void release();
    }
}
