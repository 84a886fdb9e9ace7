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

    private final List<BlockSpec> blocks;
    private final PooledKeyValueStore keyValues;
    private final LayerState[][] slotStates;

    public HostStateStore(CacheSizing sizing, List<BlockSpec> blocks,
            Supplier<LayerState[]> newStates) {
        this.blocks = List.copyOf(blocks);
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
    public SlotCopy saveSlot(int slot, int[] table, int position) {
        LayerState[] states = slotStates[slot];
        LayerState.Mamba[] copies = new LayerState.Mamba[states.length];
        byte[][][] tailRows = new byte[states.length][][];
        int tailStart = position - position % keyValues.blockSize();
        for (int b = 0; b < states.length; b++) {
            if (states[b] instanceof LayerState.Mamba mamba) {
                copies[b] = mamba.copy();
            } else if (blocks.get(b) instanceof BlockSpec.Attention && tailStart < position) {
                tailRows[b] = keyValues.layer(b).exportRows(table, tailStart, position);
            }
        }
        return new HostCopy(position, copies, tailRows);
    }

    @Override
    public void restoreSlot(int slot, int[] table, SlotCopy copy) {
        HostCopy saved = (HostCopy) copy;
        LayerState[] target = slotStates[slot];
        int tailStart = saved.position() - saved.position() % keyValues.blockSize();
        for (int b = 0; b < target.length; b++) {
            if (target[b] instanceof LayerState.Mamba mamba) {
                mamba.copyFrom(saved.states()[b]);
            } else if (saved.tailRows()[b] != null) {
                keyValues.layer(b).importRows(table, tailStart, saved.tailRows()[b]);
            }
        }
    }

    /**
     * A slot's states copied into arrays of their own, and the tail's {keys, values} rows: per model
     * block, null where the block has none.
     */
    private record HostCopy(int position, LayerState.Mamba[] states, byte[][][] tailRows) implements SlotCopy {

        @Override
        public long bytes() {
            long total = 0;
            for (LayerState.Mamba state : states) {
                total += state == null ? 0 : state.bytes();
            }
            for (byte[][] rows : tailRows) {
                total += rows == null ? 0 : rows[0].length + rows[1].length;
            }
            return total;
        }

        @Override
        public void release() {
            // Garbage once the prefix cache drops it.
        }
    }

    @Override
    public void close() {
        keyValues.close();
    }
}
