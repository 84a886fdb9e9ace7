package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/**
 * Launches paged_kv.cu: new keys or values written into their rows of a paged cache
 * ({@link PagedAttentionKernel.DeviceCache}, head dim padded), and one sequence's positions
 * gathered out of it into contiguous bf16 for the prefill flash kernel.
 */
public final class PagedKvKernel {

    private static final int THREADS = 128;

    private final Kernel writeF32;
    private final Kernel writeBf16;
    private final Kernel gatherF32;
    private final Kernel gatherBf16;
    private final Kernel gatherPackedF32;
    private final Kernel gatherPackedBf16;
    private final Kernel ropeWriteF32;
    private final Kernel ropeWriteBf16;

    public PagedKvKernel(KernelModule module) {
        this.writeF32 = module.kernel("paged_kv_write_f32").waitsForPreviousKernel();
        this.writeBf16 = module.kernel("paged_kv_write_bf16").waitsForPreviousKernel();
        this.gatherF32 = module.kernel("paged_kv_gather_f32");
        this.gatherBf16 = module.kernel("paged_kv_gather_bf16");
        this.gatherPackedF32 = module.kernel("paged_kv_gather_packed_f32");
        this.gatherPackedBf16 = module.kernel("paged_kv_gather_packed_bf16");
        this.ropeWriteF32 = module.kernel("rope_kv_write_f32").waitsForPreviousKernel();
        this.ropeWriteBf16 = module.kernel("rope_kv_write_bf16").waitsForPreviousKernel();
    }

    /**
     * cacheRows[r] ← source[r], for r < rows: source (rows, kvHeads, headDim) f32; destinations (rows)
     * int32 cache rows (block · blockSize + offset); the cache's head dim (≥ headDim) is zero-padded.
     */
    public void write(CudaStream stream, DeviceBuffer source, int headDim, DeviceBuffer destinations, int rows,
            DeviceBuffer cache, PagedAttentionKernel.DeviceCache layout) {
        if (headDim > layout.headDim()) {
            throw new IllegalArgumentException("head dim " + headDim + " is wider than the cache's " + layout.headDim());
        }
        source.requireFloats((long) rows * layout.kvHeads() * headDim, "source");
        destinations.requireBytes(4L * rows, "destinations");
        if (rows > 0) {
            Kernel kernel = layout.dtype() == DType.BF16 ? writeBf16 : writeF32;
            kernel.launch(stream, rows, 1, 1, THREADS, 0, source, destinations, cache, layout.kvHeads(), headDim,
                    layout.headDim());
        }
    }

    /**
     * The rows' attention inputs in one launch (rope_kv_write.cu): when rotaryDim &gt; 0, q and key
     * turned in place as {@link RopeKernel#launchAtPositions} turns them; then key and value written
     * to the cache as {@link #write} writes them. q: (rows, qHeads, headDim), key and value: (rows,
     * layout.kvHeads(), headDim) f32; positions and destinations: (rows) int32. The positions are
     * read before the launch waits for the kernel before it (the turns are computed meanwhile), so
     * that kernel must not write them.
     */
    public void ropeAndWrite(CudaStream stream, DeviceBuffer q, int qHeads, DeviceBuffer key, DeviceBuffer value,
            int headDim, int rotaryDim, float theta, DeviceBuffer positions, DeviceBuffer destinations, int rows,
            PagedAttentionKernel.DeviceCache layout) {
        if (headDim > layout.headDim()) {
            throw new IllegalArgumentException("head dim " + headDim + " is wider than the cache's " + layout.headDim());
        }
        if (rotaryDim < 0 || rotaryDim > headDim || rotaryDim % 2 != 0) {
            throw new IllegalArgumentException(
                    "rotaryDim (" + rotaryDim + ") must be even and within headDim (" + headDim + ")");
        }
        q.requireFloats((long) rows * qHeads * headDim, "q");
        key.requireFloats((long) rows * layout.kvHeads() * headDim, "key");
        value.requireFloats((long) rows * layout.kvHeads() * headDim, "value");
        positions.requireBytes(4L * rows, "positions");
        destinations.requireBytes(4L * rows, "destinations");
        if (rows > 0) {
            Kernel kernel = layout.dtype() == DType.BF16 ? ropeWriteBf16 : ropeWriteF32;
            kernel.launch(stream, rows, 1, 1, RowKernels.ROW_THREADS, 0, q, key, value, positions, qHeads,
                    layout.kvHeads(), headDim, rotaryDim, theta, destinations, layout.keys(), layout.values(),
                    layout.headDim());
        }
    }

    /**
     * out ← positions [0, count) of a sequence whose blocks are table[0 ..], as (count, kvHeads,
     * cacheHeadDim) bf16. cache: the keys or the values of {@code layout}.
     */
    public void gather(CudaStream stream, DeviceBuffer cache, PagedAttentionKernel.DeviceCache layout,
            DeviceBuffer table, int count, DeviceBuffer out) {
        int width = layout.kvHeads() * layout.headDim();
        table.requireBytes(4L * Math.ceilDiv(count, layout.blockSize()), "table");
        out.requireBytes(2L * count * width, "out");
        if (count > 0) {
            Kernel kernel = layout.dtype() == DType.BF16 ? gatherBf16 : gatherF32;
            kernel.launch(stream, count, 1, 1, THREADS, 0, cache, table, layout.blockSize(), width, out);
        }
    }

    /**
     * {@link #gather} for several sequences in one launch: sequence z's keys through its table into
     * rows keys.starts[z] .. of out, (keys.rows(), kvHeads, headDim) bf16.
     */
    public void gatherPacked(CudaStream stream, DeviceBuffer cache, PagedAttentionKernel.DeviceCache layout,
            PackedKeys keys, DeviceBuffer out) {
        int width = layout.kvHeads() * layout.headDim();
        out.requireBytes(2L * keys.rows() * width, "out");
        if (keys.most() > 0) {
            Kernel kernel = layout.dtype() == DType.BF16 ? gatherPackedBf16 : gatherPackedF32;
            kernel.launch(stream, keys.most(), keys.sequences(), 1, THREADS, 0, cache, keys.tables(),
                    keys.tableStarts(), keys.starts(), layout.blockSize(), width, out);
        }
    }
}
