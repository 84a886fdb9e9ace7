package dev.coil.engine.cache;

import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.LayerState;
import java.util.List;
import java.util.function.Supplier;

/**
 * The serving cache's memory on the host: a {@link PooledKeyValueStore} for the K/V blocks and one
 * array of {@link LayerState}s per slot, which the CPU forward reads and updates in place.
 */
public final class HostStateStore implements StateStore {

    private final PooledKeyValueStore keyValues;
    private final LayerState[][] slotStates;

    public HostStateStore(CacheSizing sizing, List<BlockSpec> blocks,
            Supplier<LayerState[]> newStates) {
        this.keyValues = new PooledKeyValueStore(blocks, sizing.kvDtype(), sizing.blocks(), sizing.blockSize());
        this.slotStates = new LayerState[sizing.slots()][];
        for (int slot = 0; slot < slotStates.length; slot++) {
            slotStates[slot] = newStates.get();
        }
    }

    public PooledKeyValueStore keyValues() {
        return keyValues;
    }

    /** The Mamba states of a slot (null entries for non-Mamba blocks), updated in place by the forward. */
    public LayerState[] slotStates(int slot) {
        return slotStates[slot];
    }

    @Override
    public void clearSlot(int slot) {
        for (LayerState state : slotStates[slot]) {
            if (state instanceof LayerState.Mamba mamba) {
                mamba.clear();
            }
        }
    }

    @Override
    public SlotCopy saveSlot(int slot) {
        LayerState[] states = slotStates[slot];
        LayerState.Mamba[] copies = new LayerState.Mamba[states.length];
        for (int b = 0; b < states.length; b++) {
            if (states[b] instanceof LayerState.Mamba mamba) {
                copies[b] = mamba.copy();
            }
        }
        return new HostCopy(copies);
    }

    @Override
    public void restoreSlot(int slot, SlotCopy copy) {
        LayerState.Mamba[] states = ((HostCopy) copy).states();
        LayerState[] target = slotStates[slot];
        for (int b = 0; b < target.length; b++) {
            if (target[b] instanceof LayerState.Mamba mamba) {
                mamba.copyFrom(states[b]);
            }
        }
    }

    /** A slot's states copied into arrays of their own: per model block, null for non-Mamba blocks. */
    private record HostCopy(LayerState.Mamba[] states) implements SlotCopy {

        @Override
        public long bytes() {
            long total = 0;
            for (LayerState.Mamba state : states) {
                total += state == null ? 0 : state.bytes();
            }
            return total;
        }

        @Override
        public void release() {
            // Garbage once the prefix cache drops it.
        }
    }

    @Override
    public byte[][] exportRows(int block, int[] table, int from, int to) {
        return keyValues.layer(block).exportRows(table, from, to);
    }

    @Override
    public void importRows(int block, int[] table, int from, byte[][] rows) {
        keyValues.layer(block).importRows(table, from, rows);
    }

    @Override
    public void close() {
        keyValues.close();
    }
}
