package dev.coil.engine.model;

import java.util.Arrays;

/**
 * Everything a model remembers about one sequence: the recurrent state of each Mamba block (a
 * {@link LayerState.Mamba}; null for attention and feed-forward blocks), the block table that
 * locates its keys and values in a {@link KeyValueStore}, and the number of tokens processed.
 */
public final class SequenceState {

    private final LayerState[] layers;
    private final KeyValueStore keyValues;
    private final int slot;
    private int[] blockTable = new int[8];
    private int blockCount;
    private int length;

    SequenceState(LayerState[] layers, KeyValueStore keyValues, int slot) {
        this.layers = layers;
        this.keyValues = keyValues;
        this.slot = slot;
    }

    /**
     * A sequence whose Mamba states live outside the JVM, in slot {@code slot} of a device's cache
     * (the GPU backend finds them by the slot); {@code modelBlocks}: the model's block count.
     */
    public static SequenceState inSlot(int modelBlocks, int slot) {
        return new SequenceState(new LayerState[modelBlocks], null, slot);
    }

    /** The serving cache's state slot holding this sequence's Mamba states, or -1 for a standalone sequence. */
    public int slot() {
        return slot;
    }

    /** Tokens processed so far: the position of the next token. */
    public int length() {
        return length;
    }

    /**
     * Declares that the first {@code length} positions are already in place (restored from the
     * prefix cache: K/V in the table's blocks, Mamba state copied into the layers).
     */
    public void resumeAt(int length) {
        this.length = length;
    }

    /** Records that {@code tokens} more positions were computed (by a forward pass). */
    public void advance(int tokens) {
        length += tokens;
    }

    /** This block's state: a {@link LayerState.Mamba} for Mamba blocks, null otherwise. */
    public LayerState layer(int block) {
        return layers[block];
    }

    public int blocks() {
        return layers.length;
    }

    KeyValueStore keyValues() {
        return keyValues;
    }

    /** The block ids holding positions [0, blockCount · blockSize), in order (the array may be longer). */
    public int[] blockTable() {
        return blockTable;
    }

    public int blockCount() {
        return blockCount;
    }

    public void appendBlock(int blockId) {
        if (blockCount == blockTable.length) {
            blockTable = Arrays.copyOf(blockTable, 2 * blockTable.length);
        }
        blockTable[blockCount++] = blockId;
    }

    /** Sets the whole block table (the engine's scheduler owns it; the sequence mirrors it each step). */
    public void setBlockTable(int[] blockIds) {
        if (blockIds.length > blockTable.length) {
            blockTable = Arrays.copyOf(blockIds, Math.max(blockIds.length, 2 * blockTable.length));
        } else {
            System.arraycopy(blockIds, 0, blockTable, 0, blockIds.length);
        }
        blockCount = blockIds.length;
    }

    /** Forgets every block and token (preemption: the blocks have been returned to their pool). */
    public void clear() {
        blockCount = 0;
        length = 0;
        for (LayerState layer : layers) {
            if (layer instanceof LayerState.Mamba mamba) {
                mamba.clear();
            }
        }
    }
}
