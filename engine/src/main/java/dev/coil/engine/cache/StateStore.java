package dev.coil.engine.cache;

import dev.coil.engine.model.LayerState;

/**
 * Where the serving cache's memory lives: the K/V blocks of every attention layer and the Mamba
 * state slots, on the host ({@link HostStateStore}) or on a GPU. {@link ServingCache} decides which
 * block and slot belongs to whom; the store only holds and copies their contents.
 */
public interface StateStore extends AutoCloseable {

    /** Sets a slot's Mamba states to the state at the start of a sequence (zeros). */
    void clearSlot(int slot);

    /** A host copy of the slot's states, one per model block (null for non-Mamba blocks). */
    LayerState.Mamba[] saveSlot(int slot);

    /** Overwrites the slot's states with {@code states} (from {@link #saveSlot}). */
    void restoreSlot(int slot, LayerState.Mamba[] states);

    /** Attention block {@code block}'s {keys, values} rows at positions [from, to) of a block table, as bytes. */
    byte[][] exportRows(int block, int[] table, int from, int to);

    /** Writes rows from {@link #exportRows} back at positions from .. of the table. */
    void importRows(int block, int[] table, int from, byte[][] rows);

    @Override
    void close();
}
