package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.AttentionShape;

/**
 * Launches paged_attention.cu: {@code Ops.pagedAttention} for one decode token of each sequence of
 * a batch, every sequence with its own length and block table, over a bf16 or f32 cache on the
 * device. The context is cut into partitions, one block per (kv head, partition, sequence), merged
 * by log-sum-exp when there are several (flash-decoding), so a single long sequence fills the GPU.
 */
public final class PagedAttentionKernel {

    private static final double LOG2_E = 1.4426950408889634;
    private static final int THREADS = 128;
    private static final int WARPS = THREADS / 32;
    /** Blocks per multiprocessor a plan aims for: enough loads in flight to cover memory latency. */
    private static final int BLOCKS_PER_MULTIPROCESSOR = 4;
    static final int MIN_PARTITION = 32;
    static final int MAX_PARTITION = 512;
    /** The merge keeps one weight per split in shared memory. */
    static final int MAX_SPLITS = 8192;

    /**
     * A paged K/V store on the device, the layout of {@code PagedKeyValues}: keys, values
     * [blocks, blockSize, kvHeads, headDim] in dtype (F32 or BF16).
     */
    public record DeviceCache(DeviceBuffer keys, DeviceBuffer values, DType dtype, int blocks, int blockSize,
            int kvHeads, int headDim) {

        public DeviceCache {
            if (dtype != DType.F32 && dtype != DType.BF16) {
                throw new IllegalArgumentException("paged attention reads F32 or BF16 caches, not " + dtype);
            }
            RowKernels.requirePositive(blocks, "blocks");
            RowKernels.requirePositive(blockSize, "blockSize");
            RowKernels.requirePositive(kvHeads, "kvHeads");
            long bytes = (long) blocks * blockSize * kvHeads * headDim * dtype.bytes();
            keys.requireBytes(bytes, "the key cache");
            values.requireBytes(bytes, "the value cache");
            if (keys.address() % 16 != 0 || values.address() % 16 != 0) {
                throw new IllegalArgumentException("the key and value caches must start on 16-byte boundaries");
            }
        }
    }

    /**
     * How a launch cuts the context: {@code partition} positions per block, {@code splits} blocks per
     * sequence and head group, and the workspace the merge needs (none with one split).
     */
    public record Split(int partition, int splits, long workspaceFloats) {}

    /**
     * The partition of every split when batch-invariant: a row's splits, and so its sums, then
     * depend on its own length alone, not on the batch or the longest row beside it.
     */
    static final int INVARIANT_PARTITION = 256;

    private final KernelModule module;
    private final int multiprocessors;
    private final boolean batchInvariant;

    /** multiprocessors: the device's count, which sizes the split of short batches. */
    public PagedAttentionKernel(KernelModule module, int multiprocessors) {
        this(module, multiprocessors, false);
    }

    /**
     * As above; {@code batchInvariant}: every launch cuts the context into partitions of {@value
     * #INVARIANT_PARTITION} positions and merges at least two splits (the splits past a row's end
     * add exact zeros to the merge's sums, and one split alone would skip the merge, which divides
     * otherwise), so that each row's attention is the same bits whatever shares its launch.
     */
    public PagedAttentionKernel(KernelModule module, int multiprocessors, boolean batchInvariant) {
        this.module = module;
        this.multiprocessors = multiprocessors;
        this.batchInvariant = batchInvariant;
    }

    /**
     * The split for sequences of at most {@code maxLength} positions: partitions of 32 to 512
     * positions, as short as gives about four blocks per multiprocessor. The plan depends only on
     * its arguments, so a captured launch stays valid while lengths stay within maxLength.
     */
    public Split plan(AttentionShape shape, int batch, int maxLength) {
        RowKernels.requirePositive(maxLength, "maxLength");
        if (batchInvariant) {
            return split(shape, batch, Math.max(maxLength, INVARIANT_PARTITION + 1), INVARIANT_PARTITION);
        }
        long blocksPerSplit = (long) batch * shape.kvHeads() * headGroups(shape);
        long wanted = Math.max(1, ((long) BLOCKS_PER_MULTIPROCESSOR * multiprocessors + blocksPerSplit - 1)
                / blocksPerSplit);
        long perSplit = (maxLength + wanted - 1) / wanted;
        int partition = (int) Math.min(MAX_PARTITION, Math.max(MIN_PARTITION, powerOfTwoAtLeast(perSplit)));
        return split(shape, batch, maxLength, partition);
    }

    /** The split with a given partition length. */
    static Split split(AttentionShape shape, int batch, int maxLength, int partition) {
        if (partition < 1 || partition > MAX_PARTITION) {
            throw new IllegalArgumentException("partition must be within 1 .. " + MAX_PARTITION + ", not " + partition);
        }
        int splits = (maxLength + partition - 1) / partition;
        if (splits > MAX_SPLITS) {
            throw new IllegalArgumentException("paged attention covers at most " + (long) MAX_SPLITS * partition
                    + " positions with partitions of " + partition + ", not " + maxLength);
        }
        long workspace = splits == 1 ? 0 : (long) batch * shape.queryHeads() * splits * (shape.headDim() + 2);
        return new Split(partition, splits, workspace);
    }

    /**
     * Attention of one new query per sequence over its positions 0 .. lengths[b] (the new token's
     * key and value already stored), with the split of {@link #plan}.
     * q, out: [batch, queryHeads, headDim] f32; blockTables: [batch, tableStride] int32 block
     * indices (position p of sequence b in block blockTables[b, p / blockSize]); lengths: [batch]
     * int32, each within 1 .. maxLength; workspace: {@code plan(...).workspaceFloats()} floats.
     * The lengths and block tables are read before the launch waits for the kernel before it, so
     * that kernel must not write them (only q and the cache's new row may come from it).
     */
    public void launch(CudaStream stream, AttentionShape shape, int batch, int maxLength, float scale, DeviceBuffer q,
            DeviceCache cache, DeviceBuffer blockTables, int tableStride, DeviceBuffer lengths, DeviceBuffer workspace,
            DeviceBuffer out) {
        launch(stream, plan(shape, batch, maxLength), shape, batch, maxLength, scale, q, cache, blockTables,
                tableStride, lengths, workspace, out);
    }

    void launch(CudaStream stream, Split split, AttentionShape shape, int batch, int maxLength, float scale,
            DeviceBuffer q, DeviceCache cache, DeviceBuffer blockTables, int tableStride, DeviceBuffer lengths,
            DeviceBuffer workspace, DeviceBuffer out) {
        int headDim = shape.headDim();
        if (headDim != 64 && headDim != 128) {
            throw new IllegalArgumentException("paged attention supports head dims 64 and 128, not " + headDim);
        }
        if (cache.kvHeads() != shape.kvHeads() || cache.headDim() != headDim) {
            throw new IllegalArgumentException("the cache holds " + cache.kvHeads() + " kv heads of dim "
                    + cache.headDim() + "; the shape needs " + shape.kvHeads() + " of dim " + headDim);
        }
        RowKernels.requirePositive(batch, "batch");
        RowKernels.requirePositive(maxLength, "maxLength");
        if (batch > 65535) {
            throw new IllegalArgumentException("paged attention takes at most 65535 sequences per launch, not " + batch);
        }
        if (!(scale > 0) || !Float.isFinite(scale)) {
            throw new IllegalArgumentException("scale must be positive and finite, not " + scale);
        }
        if ((long) tableStride * cache.blockSize() < maxLength) {
            throw new IllegalArgumentException("block tables of " + tableStride + " blocks of " + cache.blockSize()
                    + " positions cannot hold maxLength " + maxLength);
        }
        if (split.splits() < (maxLength + split.partition() - 1) / split.partition()) {
            throw new IllegalArgumentException(split + " does not cover maxLength " + maxLength);
        }
        long rows = (long) batch * shape.queryHeads();
        q.requireFloats(rows * headDim, "q");
        out.requireFloats(rows * headDim, "out");
        if (q.address() % 16 != 0) {
            throw new IllegalArgumentException("q must start on a 16-byte boundary on the device");
        }
        blockTables.requireBytes(4L * batch * tableStride, "blockTables");
        lengths.requireBytes(4L * batch, "lengths");

        int group = group(shape);
        DeviceBuffer partialOut = null;
        DeviceBuffer partialStats = null;
        if (split.splits() > 1) {
            workspace.requireFloats(split.workspaceFloats(), "workspace");
            long outFloats = rows * split.splits() * headDim;
            partialOut = workspace.floatSlice(0, outFloats);
            partialStats = workspace.floatSlice(outFloats, rows * split.splits() * 2);
        }
        String dtype = cache.dtype() == DType.BF16 ? "bf16" : "f32";
        Kernel decode = module.kernel("paged_attention_" + dtype + "_d" + headDim + "_g" + group)
                .waitsForPreviousKernel();
        // Scores (rounded up to 16 bytes), the warps' partial sums, the split's block-table entries.
        int sharedBytes = 4 * ((group * split.partition() + 3) / 4 * 4 + WARPS * group * headDim
                + split.partition() + 2);
        decode.launch(stream, shape.kvHeads() * headGroups(shape), split.splits(), batch, THREADS, sharedBytes, q,
                cache.keys(), cache.values(), blockTables, tableStride, lengths, cache.blockSize(), shape.queryHeads(),
                shape.kvHeads(), split.partition(), (float) (scale * LOG2_E), partialOut, partialStats, out);
        if (split.splits() > 1) {
            module.kernel("paged_attention_merge").waitsForPreviousKernel().launch(stream, (int) rows, 1, 1, THREADS,
                    4 * split.splits(), partialOut, partialStats, out, split.splits(), headDim);
        }
    }

    /** Query heads a block serves together: the GQA ratio rounded up to 1, 2, 4 or 8. */
    static int group(AttentionShape shape) {
        return (int) powerOfTwoAtLeast(Math.min(8, shape.queryHeads() / shape.kvHeads()));
    }

    /** Blocks per kv head: ratios over 8 take several. */
    static int headGroups(AttentionShape shape) {
        int ratio = shape.queryHeads() / shape.kvHeads();
        int group = group(shape);
        return (ratio + group - 1) / group;
    }

    private static long powerOfTwoAtLeast(long value) {
        long power = 1;
        while (power < value) {
            power <<= 1;
        }
        return power;
    }
}
