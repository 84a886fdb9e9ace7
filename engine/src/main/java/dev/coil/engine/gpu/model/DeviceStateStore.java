package dev.coil.engine.gpu.model;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.StateStore;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.PagedAttentionKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.ops.SsmShape;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * The serving cache's memory on the GPU. Per Mamba block: conv states [slots + 1, kernel - 1,
 * channels] and SSM states [slots + 1, heads, headDim, stateSize], f32. Per attention block: keys
 * and values [blocks + 1, blockSize, kvHeads, paddedHeadDim] in the KV dtype (head dims padded to
 * the 64 or 128 the kernels compile, padding kept at zero). The extra slot and block at the end
 * belong to nobody: the padded rows of a captured decode step read and write there.
 *
 * <p>The prefix cache's snapshots live here too, in a pool of copies (its share of the cache
 * budget): each a slot's states and, per attention block, a block's worth of K/V rows for the tail
 * past the last full block. Saving and restoring one are device-to-device copies queued on the
 * steps' stream, so a snapshot costs the step thread no wait for the device.
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
    /** The prefix cache's copies of slots, per Mamba block: [copies, ...] shaped as the slots. */
    private final DeviceBuffer[] convCopies;
    private final DeviceBuffer[] ssmCopies;
    /** Per attention block, each copy's tail rows: [copies, blockSize, kvHeads, paddedHeadDim] in the KV dtype. */
    private final DeviceBuffer[] tailKeys;
    private final DeviceBuffer[] tailValues;
    private final int copyCount;
    private final long copyBytes;
    private final ArrayDeque<Integer> freeCopies = new ArrayDeque<>();

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
        this.convCopies = new DeviceBuffer[blocks.size()];
        this.ssmCopies = new DeviceBuffer[blocks.size()];
        this.tailKeys = new DeviceBuffer[blocks.size()];
        this.tailValues = new DeviceBuffer[blocks.size()];
        this.copyBytes = copyBytes(blocks, sizing);
        this.copyCount = copyCount(blocks, sizing);
        for (int copy = copyCount - 1; copy >= 0; copy--) {
            freeCopies.push(copy);
        }
        device.makeCurrent();
        try {
            for (int b = 0; b < blocks.size(); b++) {
                switch (blocks.get(b)) {
                    case BlockSpec.Mamba m -> {
                        convStates[b] = zeros((long) (slots + 1) * convFloats(m));
                        ssmStates[b] = zeros((long) (slots + 1) * ssmFloats(m));
                        if (copyCount > 0) {
                            convCopies[b] = allocate((long) copyCount * convFloats(m));
                            ssmCopies[b] = allocate((long) copyCount * ssmFloats(m));
                        }
                    }
                    case BlockSpec.Attention a -> {
                        long blockFloats = Math.ceilDiv(kvBlockBytes(a, sizing), 4);
                        caches[b] = new PagedAttentionKernel.DeviceCache(zeros((blockCount + 1) * blockFloats),
                                zeros((blockCount + 1) * blockFloats), kvDtype, blockCount + 1, blockSize, a.kvHeads(),
                                StepAttention.paddedHeadDim(a.headDim()));
                        if (copyCount > 0) {
                            tailKeys[b] = allocate(copyCount * blockFloats);
                            tailValues[b] = allocate(copyCount * blockFloats);
                        }
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

    /** One copy's bytes: a slot's Mamba states (f32) and a block's K/V rows of every attention block. */
    private static long copyBytes(List<BlockSpec> blocks, CacheSizing sizing) {
        long total = 0;
        for (BlockSpec spec : blocks) {
            total += switch (spec) {
                case BlockSpec.Mamba m -> 4 * (convFloats(m) + ssmFloats(m));
                case BlockSpec.Attention a -> 2 * kvBlockBytes(a, sizing);
                case BlockSpec.Mlp m -> 0;
            };
        }
        return total;
    }

    /** One block of an attention block's keys (or values): blockSize rows of the padded heads in the KV dtype. */
    private static long kvBlockBytes(BlockSpec.Attention a, CacheSizing sizing) {
        return (long) sizing.blockSize() * a.kvHeads() * StepAttention.paddedHeadDim(a.headDim())
                * sizing.kvDtype().bytes();
    }

    /**
     * Copies for the prefix cache (models with Mamba blocks): its snapshot budget over one copy's
     * bytes, and one more, so that a copy is free while the cache evicts the snapshot its budget no
     * longer holds.
     */
    private static int copyCount(List<BlockSpec> blocks, CacheSizing sizing) {
        boolean hasMamba = blocks.stream().anyMatch(BlockSpec.Mamba.class::isInstance);
        if (!hasMamba || !sizing.prefixCaching()) {
            return 0;
        }
        long fits = sizing.snapshotBytes() / copyBytes(blocks, sizing);
        return fits == 0 ? 0 : (int) Math.min(fits + 1, 1 << 20);
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

    /**
     * Copies the slot's states, and the tail's K/V rows of every attention block, into a free entry
     * of the pool, queued on the steps' stream after the step that computed them: the host goes on
     * planning the next step while the device copies.
     */
    @Override
    public SlotCopy saveSlot(int slot, int[] table, int position) {
        int copy;
        synchronized (freeCopies) {
            if (freeCopies.isEmpty()) {
                return null;
            }
            copy = freeCopies.pop();
        }
        transfer(slot, table, position, copy, true);
        return new PooledCopy(copy, position);
    }

    /** Copies a saved entry back into the slot and the table's tail, queued on the steps' stream before the steps that read them. */
    @Override
    public void restoreSlot(int slot, int[] table, SlotCopy saved) {
        PooledCopy pooled = (PooledCopy) saved;
        transfer(slot, table, pooled.position(), pooled.index(), false);
    }

    /**
     * Queues the copies between a sequence (its slot's states, its table's tail rows at {@code
     * position}) and entry {@code copy} of the pool: into the entry when saving, out of it when not.
     */
    private void transfer(int slot, int[] table, int position, int copy, boolean save) {
        device.makeCurrent();
        int tailRows = position % blockSize;
        for (int b = 0; b < blocks.size(); b++) {
            if (convStates[b] != null) {
                long conv = convState(b, slot).bytes();
                long ssm = ssmState(b, slot).bytes();
                transfer(convStates[b].slice(slot * conv, conv), convCopies[b].slice(copy * conv, conv), save);
                transfer(ssmStates[b].slice(slot * ssm, ssm), ssmCopies[b].slice(copy * ssm, ssm), save);
            } else if (caches[b] != null && tailRows > 0) {
                PagedAttentionKernel.DeviceCache cache = caches[b];
                long bytes = (long) tailRows * rowBytes(cache);
                long offset = rowOffset(cache, table, position - tailRows);
                long entry = (long) copy * blockSize * rowBytes(cache);
                transfer(cache.keys().slice(offset, bytes), tailKeys[b].slice(entry, bytes), save);
                transfer(cache.values().slice(offset, bytes), tailValues[b].slice(entry, bytes), save);
            }
        }
    }

    private void transfer(DeviceBuffer live, DeviceBuffer saved, boolean save) {
        if (save) {
            saved.copyFromAsync(live, live.bytes(), stream);
        } else {
            live.copyFromAsync(saved, saved.bytes(), stream);
        }
    }

    /** How many copies the pool holds (the prefix cache's snapshot budget over one copy's bytes, and one more). */
    int copies() {
        return copyCount;
    }

    /** Entry {@code index} of the copy pool; its memory returns to the pool on release. */
    private final class PooledCopy implements SlotCopy {
        private final int index;
        private final int position;
        private boolean released;

        PooledCopy(int index, int position) {
            this.index = index;
            this.position = position;
        }

        int index() {
            if (released) {
                throw new IllegalStateException("a released state copy was restored");
            }
            return index;
        }

        @Override
        public int position() {
            return position;
        }

        @Override
        public long bytes() {
            return copyBytes;
        }

        @Override
        public void release() {
            synchronized (freeCopies) {
                if (!released) {
                    released = true;
                    freeCopies.push(index);
                }
            }
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
        DeviceBuffer buffer = allocate(floats);
        buffer.fill(0);
        return buffer;
    }

    private DeviceBuffer allocate(long floats) {
        DeviceBuffer buffer = device.allocateFloats(floats);
        owned.add(buffer);
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
