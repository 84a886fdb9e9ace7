package dev.coil.engine.model;

import dev.coil.engine.load.DType;
import dev.coil.engine.ops.HugePageArena;
import dev.coil.engine.ops.PagedKeyValues;
import java.lang.foreign.Arena;
import java.util.List;

/**
 * The private K/V store of one standalone sequence (CLI generate and score, tests): its block table
 * is 0, 1, 2, … and the storage doubles when it runs out, copying what it holds. Memory is freed
 * by the garbage collector with the sequence.
 */
final class GrowingKeyValueStore implements KeyValueStore {

    private static final int BLOCK_SIZE = 64;

    private final List<BlockSpec> blocks;
    private final DType dtype;
    private final PagedKeyValues[] layers;
    private int capacityBlocks;

    GrowingKeyValueStore(List<BlockSpec> blocks, DType dtype) {
        this.blocks = blocks;
        this.dtype = dtype;
        this.layers = new PagedKeyValues[blocks.size()];
        grow(4);
    }

    @Override
    public int blockSize() {
        return BLOCK_SIZE;
    }

    @Override
    public PagedKeyValues layer(int block) {
        return layers[block];
    }

    @Override
    public void reserve(SequenceState sequence, int positions) {
        int needed = Math.ceilDiv(positions, BLOCK_SIZE);
        if (needed > capacityBlocks) {
            grow(Math.max(needed, 2 * capacityBlocks));
        }
        while (sequence.blockCount() < needed) {
            sequence.appendBlock(sequence.blockCount());
        }
    }

    private void grow(int newCapacity) {
        Arena arena = HugePageArena.ofAuto(); // decode attention streams these blocks
        for (int i = 0; i < layers.length; i++) {
            if (blocks.get(i) instanceof BlockSpec.Attention attention) {
                PagedKeyValues larger = new PagedKeyValues(arena, dtype, newCapacity, BLOCK_SIZE, attention.kvHeads(),
                        attention.headDim());
                if (layers[i] != null) {
                    for (int b = 0; b < capacityBlocks; b++) {
                        PagedKeyValues.copyBlock(layers[i], b, larger, b, BLOCK_SIZE);
                    }
                }
                layers[i] = larger;
            }
        }
        capacityBlocks = newCapacity;
    }
}
