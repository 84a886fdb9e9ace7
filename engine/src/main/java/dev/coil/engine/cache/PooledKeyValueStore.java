package dev.coil.engine.cache;

import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.KeyValueStore;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.ops.HugePageArena;
import dev.coil.engine.ops.PagedKeyValues;
import java.lang.foreign.Arena;
import java.util.List;

/**
 * The engine's K/V store: a fixed number of blocks per attention layer, allocated once off-heap.
 * Which sequence owns which block is {@link BlockPool}'s business; the scheduler has filled each
 * sequence's block table before a step, so {@link #reserve} only checks.
 */
public final class PooledKeyValueStore implements KeyValueStore, AutoCloseable {

    private final Arena arena = HugePageArena.ofShared(); // decode attention streams these blocks
    private final PagedKeyValues[] layers;
    private final int blockSize;

    public PooledKeyValueStore(List<BlockSpec> blocks, DType dtype, int blockCount, int blockSize) {
        this.blockSize = blockSize;
        this.layers = new PagedKeyValues[blocks.size()];
        for (int i = 0; i < layers.length; i++) {
            if (blocks.get(i) instanceof BlockSpec.Attention attention) {
                layers[i] = new PagedKeyValues(arena, dtype, blockCount, blockSize, attention.kvHeads(),
                        attention.headDim());
            }
        }
    }

    /** Bytes one block takes across every attention layer. */
    public static long blockBytes(List<BlockSpec> blocks, DType dtype, int blockSize) {
        long bytes = 0;
        for (BlockSpec block : blocks) {
            if (block instanceof BlockSpec.Attention attention) {
                bytes += PagedKeyValues.blockBytes(dtype, blockSize, attention.kvHeads(), attention.headDim());
            }
        }
        return bytes;
    }

    @Override
    public int blockSize() {
        return blockSize;
    }

    @Override
    public PagedKeyValues layer(int block) {
        return layers[block];
    }

    @Override
    public void reserve(SequenceState sequence, int positions) {
        if ((long) sequence.blockCount() * blockSize < positions) {
            throw new IllegalStateException("the sequence's block table covers " + sequence.blockCount() * blockSize
                    + " positions, the step needs " + positions);
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}
