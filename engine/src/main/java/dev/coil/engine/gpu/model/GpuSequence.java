package dev.coil.engine.gpu.model;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.model.SequenceState;
import java.util.List;

/**
 * One standalone sequence on the device, its state zero at the start: a cache of its own with one
 * state slot and enough f32 K/V blocks for {@code capacity} positions (block table 0, 1, 2, …), run
 * by a {@link GpuStep} of its own, the serving engine's step for a batch of one.
 */
public final class GpuSequence implements AutoCloseable {

    /** Positions per block of the sequence's cache. */
    static final int BLOCK_SIZE = 16;

    private final DeviceStateStore store;
    final SequenceState state;
    final GpuStep step;
    private final int capacity;

    GpuSequence(ModelConfig config, GpuWeights weights, DeviceKernels kernels, int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("a sequence's capacity must be positive, not " + capacity);
        }
        int blocks = Math.ceilDiv(capacity, BLOCK_SIZE);
        this.capacity = blocks * BLOCK_SIZE;
        CacheSizing sizing = new CacheSizing(BLOCK_SIZE, DType.F32, blocks, 1, false, 0, 0, 0, 0, List.of());
        this.store = new DeviceStateStore(kernels.device, kernels.stream, config.blocks(), sizing);
        this.state = SequenceState.inSlot(config.blocks().size(), 0);
        int[] table = new int[blocks];
        for (int i = 0; i < blocks; i++) {
            table[i] = i;
        }
        state.setBlockTable(table);
        this.step = new GpuStep(config, weights, kernels, store, false, 1, false);
    }

    /** Tokens seen so far. */
    public int length() {
        return state.length();
    }

    /** The most tokens this sequence can hold. */
    public int capacity() {
        return capacity;
    }

    void requireRoom(int tokens) {
        if (state.length() + tokens > capacity) {
            throw new IllegalArgumentException("the sequence holds " + state.length() + " of " + capacity
                    + " positions; " + tokens + " more do not fit (raise the capacity given to newSequence)");
        }
    }

    @Override
    public void close() {
        step.close();
        store.close();
    }
}
