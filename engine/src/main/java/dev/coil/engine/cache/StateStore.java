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
     * A copy of the slot's Mamba states where the store keeps them (host arrays for the CPU, device
     * memory for a GPU), or null when the store has no room for another copy now. Ordered after the
     * work already queued on the slot, so that a GPU store need not wait for the device.
     */
    SlotCopy saveSlot(int slot);

    /** Overwrites the slot's states with {@code copy} (from {@link #saveSlot}, not yet released). */
    void restoreSlot(int slot, SlotCopy copy);

    /** Attention block {@code block}'s {keys, values} rows at positions [from, to) of a block table, as bytes. */
    byte[][] exportRows(int block, int[] table, int from, int to);

    /** Writes rows from {@link #exportRows} back at positions from .. of the table. */
    void importRows(int block, int[] table, int from, byte[][] rows);

    @Override
    void close();

    /** One slot's Mamba states as {@link #saveSlot} copied them; held by the prefix cache. */
    interface SlotCopy {

        /** The bytes the copy holds. */
        long bytes();

        /** Gives the copy's memory back to its store; the copy is not restored after this. */
        void release();
    }
}
