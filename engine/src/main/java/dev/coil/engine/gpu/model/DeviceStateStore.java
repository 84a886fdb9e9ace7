package dev.coil.engine.gpu.model;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.StateStore;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.PagedAttentionKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.LayerState;
import dev.coil.engine.ops.SsmShape;
import java.util.ArrayList;
import java.util.List;

/**
 * The serving cache's memory on the GPU. Per Mamba block: conv states [slots + 1, kernel - 1,
 * channels] and SSM states [slots + 1, heads, headDim, stateSize], f32. Per attention block: keys
 * and values [blocks + 1, blockSize, kvHeads, paddedHeadDim] in the KV dtype (head dims padded to
 * the 64 or 128 the kernels compile, padding kept at zero). The extra slot and block at the end
 * belong to nobody: the padded rows of a captured decode step read and write there.
 */
final class DeviceStateStore implements StateStore {

    private final CudaDevice device;
    private final List<BlockSpec> blocks;
    private final int slots;
    private final int blockCount;
    private final int blockSize;
    private final DType kvDtype;
    private final DeviceBuffer[] convStates;
    private final DeviceBuffer[] ssmStates;
    private final PagedAttentionKernel.DeviceCache[] caches;
    private final List<DeviceBuffer> owned = new ArrayList<>();
    private final CudaStream stream;

    /**
     * @param stream the stream the steps run on: a cleared slot is zeroed there, in order with
     *               the prefill that follows, without waiting for the device
     */
    DeviceStateStore(CudaDevice device, CudaStream stream, List<BlockSpec> blocks, CacheSizing sizing) {
        this.device = device;
        this.stream = stream;
        this.blocks = List.copyOf(blocks);
        this.slots = sizing.slots();
        this.blockCount = sizing.blocks();
        this.blockSize = sizing.blockSize();
        this.kvDtype = sizing.kvDtype();
        this.convStates = new DeviceBuffer[blocks.size()];
        this.ssmStates = new DeviceBuffer[blocks.size()];
        this.caches = new PagedAttentionKernel.DeviceCache[blocks.size()];
        device.makeCurrent();
        try {
            for (int b = 0; b < blocks.size(); b++) {
                switch (blocks.get(b)) {
                    case BlockSpec.Mamba m -> {
                        convStates[b] = zeros((long) (slots + 1) * convFloats(m));
                        ssmStates[b] = zeros((long) (slots + 1) * ssmFloats(m));
                    }
                    case BlockSpec.Attention a -> {
                        int padded = StepAttention.paddedHeadDim(a.headDim());
                        long bytes = (long) (blockCount + 1) * blockSize * a.kvHeads() * padded * kvDtype.bytes();
                        caches[b] = new PagedAttentionKernel.DeviceCache(zeros(bytes / 4), zeros(bytes / 4), kvDtype,
                                blockCount + 1, blockSize, a.kvHeads(), padded);
                    }
                    case BlockSpec.Mlp m -> {
                    }
                }
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Bytes of device memory for {@code sizing}'s blocks and slots, with the padding slot and block. */
    static long bytes(List<BlockSpec> blocks, CacheSizing sizing) {
        long total = 0;
        for (BlockSpec spec : blocks) {
            total += switch (spec) {
                case BlockSpec.Mamba m -> 4L * (sizing.slots() + 1) * (convFloats(m) + ssmFloats(m));
                case BlockSpec.Attention a -> 2L * (sizing.blocks() + 1) * sizing.blockSize() * a.kvHeads()
                        * StepAttention.paddedHeadDim(a.headDim()) * sizing.kvDtype().bytes();
                case BlockSpec.Mlp m -> 0;
            };
        }
        return total;
    }

    private static long convFloats(BlockSpec.Mamba m) {
        return (long) (m.convKernel() - 1) * m.convChannels();
    }

    private static long ssmFloats(BlockSpec.Mamba m) {
        return new SsmShape(m.heads(), m.headDim(), m.groups(), m.stateSize()).stateFloats();
    }

    /** Sequences the store holds state for at once. */
    int slots() {
        return slots;
    }

    /** The slot nobody owns, for padded rows. */
    int paddingSlot() {
        return slots;
    }

    /** The block nobody owns, for padded rows. */
    int paddingBlock() {
        return blockCount;
    }

    int blockSize() {
        return blockSize;
    }

    /** Every slot's conv states of a Mamba block: [slots + 1, kernel - 1, channels]. */
    DeviceBuffer convStates(int block) {
        return convStates[block];
    }

    /** Every slot's SSM states of a Mamba block: [slots + 1, heads, headDim, stateSize]. */
    DeviceBuffer ssmStates(int block) {
        return ssmStates[block];
    }

    DeviceBuffer convState(int block, int slot) {
        BlockSpec.Mamba m = (BlockSpec.Mamba) blocks.get(block);
        return convStates[block].floatSlice(slot * convFloats(m), convFloats(m));
    }

    DeviceBuffer ssmState(int block, int slot) {
        BlockSpec.Mamba m = (BlockSpec.Mamba) blocks.get(block);
        return ssmStates[block].floatSlice(slot * ssmFloats(m), ssmFloats(m));
    }

    /** The paged keys and values of an attention block. */
    PagedAttentionKernel.DeviceCache cache(int block) {
        return caches[block];
    }

    @Override
    public void clearSlot(int slot) {
        device.makeCurrent();
        for (int b = 0; b < blocks.size(); b++) {
            if (convStates[b] != null) {
                convState(b, slot).fillAsync(0, stream);
                ssmState(b, slot).fillAsync(0, stream);
            }
        }
    }

    @Override
    public LayerState.Mamba[] saveSlot(int slot) {
        device.makeCurrent();
        LayerState.Mamba[] copies = new LayerState.Mamba[blocks.size()];
        for (int b = 0; b < blocks.size(); b++) {
            if (convStates[b] != null) {
                DeviceBuffer conv = convState(b, slot);
                DeviceBuffer ssm = ssmState(b, slot);
                copies[b] = new LayerState.Mamba(new float[(int) conv.floats()], new float[(int) ssm.floats()]);
                conv.copyTo(copies[b].conv());
                ssm.copyTo(copies[b].ssm());
            }
        }
        return copies;
    }

    @Override
    public void restoreSlot(int slot, LayerState.Mamba[] states) {
        device.makeCurrent();
        for (int b = 0; b < blocks.size(); b++) {
            if (convStates[b] != null) {
                convState(b, slot).copyFrom(states[b].conv());
                ssmState(b, slot).copyFrom(states[b].ssm());
            }
        }
    }

    @Override
    public byte[][] exportRows(int block, int[] table, int from, int to) {
        device.makeCurrent();
        PagedAttentionKernel.DeviceCache cache = caches[block];
        int rowBytes = rowBytes(cache);
        byte[] keys = new byte[(to - from) * rowBytes];
        byte[] values = new byte[keys.length];
        byte[] row = new byte[rowBytes];
        for (int position = from; position < to; position++) {
            long offset = rowOffset(cache, table, position);
            cache.keys().slice(offset, rowBytes).copyTo(row);
            System.arraycopy(row, 0, keys, (position - from) * rowBytes, rowBytes);
            cache.values().slice(offset, rowBytes).copyTo(row);
            System.arraycopy(row, 0, values, (position - from) * rowBytes, rowBytes);
        }
        return new byte[][] {keys, values};
    }

    @Override
    public void importRows(int block, int[] table, int from, byte[][] rows) {
        device.makeCurrent();
        PagedAttentionKernel.DeviceCache cache = caches[block];
        int rowBytes = rowBytes(cache);
        int count = rows[0].length / rowBytes;
        byte[] row = new byte[rowBytes];
        for (int r = 0; r < count; r++) {
            long offset = rowOffset(cache, table, from + r);
            System.arraycopy(rows[0], r * rowBytes, row, 0, rowBytes);
            cache.keys().slice(offset, rowBytes).copyFrom(row);
            System.arraycopy(rows[1], r * rowBytes, row, 0, rowBytes);
            cache.values().slice(offset, rowBytes).copyFrom(row);
        }
    }

    private static int rowBytes(PagedAttentionKernel.DeviceCache cache) {
        return cache.kvHeads() * cache.headDim() * cache.dtype().bytes();
    }

    private static long rowOffset(PagedAttentionKernel.DeviceCache cache, int[] table, int position) {
        long row = (long) table[position / cache.blockSize()] * cache.blockSize() + position % cache.blockSize();
        return row * rowBytes(cache);
    }

    private DeviceBuffer zeros(long floats) {
        DeviceBuffer buffer = device.allocateFloats(floats);
        owned.add(buffer);
        buffer.fill(0);
        return buffer;
    }

    @Override
    public void close() {
        device.makeCurrent();
        device.synchronize();
        for (DeviceBuffer buffer : owned) {
            buffer.close();
        }
        owned.clear();
    }
}
