package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.PagedAttentionKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.ops.SsmShape;
import java.util.ArrayList;
import java.util.List;

/**
 * One sequence's state on the device, zero at the start: per Mamba block the conv state
 * [kernel - 1, channels] and the SSM state [heads, headDim, stateSize]; per attention block its keys
 * and values, contiguous f32 [capacity, kvHeads, paddedHeadDim] (head dims the attention kernels
 * do not compile are zero-padded to the next they do). The contiguous store is read by the paged
 * decode kernel through an identity block table.
 */
public final class GpuSequence implements AutoCloseable {

    /** Positions per block of the identity block table. */
    static final int BLOCK_SIZE = 16;

    record MambaState(DeviceBuffer conv, DeviceBuffer ssm) {
    }

    record AttentionState(PagedAttentionKernel.DeviceCache cache) {
    }

    private final List<DeviceBuffer> owned = new ArrayList<>();
    private final Object[] states;
    private final int capacity;
    final DeviceBuffer blockTable; // [capacity / BLOCK_SIZE] int32: 0, 1, 2, ...
    private int length;

    GpuSequence(CudaDevice device, List<BlockSpec> blocks, int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("a sequence's capacity must be positive, not " + capacity);
        }
        this.capacity = (capacity + BLOCK_SIZE - 1) / BLOCK_SIZE * BLOCK_SIZE;
        this.states = new Object[blocks.size()];
        try {
            int[] table = new int[this.capacity / BLOCK_SIZE];
            for (int i = 0; i < table.length; i++) {
                table[i] = i;
            }
            blockTable = own(device.upload(table));
            for (int b = 0; b < blocks.size(); b++) {
                states[b] = switch (blocks.get(b)) {
                    case BlockSpec.Mamba m -> new MambaState(
                            zeros(device, (long) (m.convKernel() - 1) * m.convChannels()),
                            zeros(device, new SsmShape(m.heads(), m.headDim(), m.groups(), m.stateSize()).stateFloats()));
                    case BlockSpec.Attention a -> {
                        int padded = GpuAttention.paddedHeadDim(a.headDim());
                        long floats = (long) this.capacity * a.kvHeads() * padded;
                        yield new AttentionState(new PagedAttentionKernel.DeviceCache(zeros(device, floats),
                                zeros(device, floats), DType.F32, this.capacity / BLOCK_SIZE, BLOCK_SIZE, a.kvHeads(),
                                padded));
                    }
                    case BlockSpec.Mlp m -> null;
                };
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Tokens seen so far. */
    public int length() {
        return length;
    }

    /** The most tokens this sequence can hold. */
    public int capacity() {
        return capacity;
    }

    MambaState mamba(int block) {
        return (MambaState) states[block];
    }

    AttentionState attention(int block) {
        return (AttentionState) states[block];
    }

    void requireRoom(int tokens) {
        if (length + tokens > capacity) {
            throw new IllegalArgumentException("the sequence holds " + length + " of " + capacity
                    + " positions; " + tokens + " more do not fit (raise the capacity given to newSequence)");
        }
    }

    void advance(int tokens) {
        length += tokens;
    }

    private DeviceBuffer zeros(CudaDevice device, long floats) {
        DeviceBuffer buffer = own(device.allocateFloats(floats));
        buffer.fill(0);
        return buffer;
    }

    private DeviceBuffer own(DeviceBuffer buffer) {
        owned.add(buffer);
        return buffer;
    }

    @Override
    public void close() {
        for (DeviceBuffer buffer : owned) {
            buffer.close();
        }
        owned.clear();
    }
}
