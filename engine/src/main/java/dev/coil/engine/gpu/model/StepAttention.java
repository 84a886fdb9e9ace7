package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.gpu.kernels.PackedKeys;
import dev.coil.engine.gpu.kernels.PagedAttentionKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.ops.AttentionShape;
import java.util.List;

/**
 * The attention mixer over a serving step's rows, K/V in the cache's paged blocks on the device:
 * q, k, v projections and RoPE for all rows at their positions; every row's k and v written into
 * its cache row; the decode rows' attention as one paged-decode launch over their block tables;
 * the prompt chunks' attention by one flash launch over their positions gathered into bf16 (or,
 * with {@code -Dcoil.cuda.packedPrefill=false}, one chunk at a time); then o_proj for all rows.
 *
 * <p>Both kernels compile head dims 64 and 128; a smaller head is zero-padded to 64 (q, k and v
 * alike): the zero columns add nothing to q·k and give zero output columns, which are dropped.
 */
final class StepAttention {

    /**
     * {@code -Dcoil.cuda.ropeInProjection=false}: one decode row's RoPE and cache write in a launch of
     * their own after q/k/v, as for more rows (for comparisons).
     */
    static final boolean ROPE_IN_PROJECTION = !"false".equalsIgnoreCase(
            System.getProperty("coil.cuda.ropeInProjection", "true"));

    private StepAttention() {
    }

    /** The head dim the kernels run: 64 or 128, at least headDim. */
    static int paddedHeadDim(int headDim) {
        if (headDim <= 64) {
            return 64;
        }
        if (headDim <= 128) {
            return 128;
        }
        throw new IllegalArgumentException("the GPU attention kernels support head dims up to 128, not " + headDim);
    }

    /** x: [rows, hidden] → out: [rows, hidden]; the rows' keys and values join the cache. */
    static void forward(DeviceKernels k, GpuWeights.Attention w, DeviceStateStore store, int block, StepLayout layout,
            DeviceBuffer inputs, StepInput x, DeviceBuffer out) {
        BlockSpec.Attention spec = w.spec();
        int rows = layout.rows;
        int headDim = spec.headDim();
        int queryHeads = spec.queryHeads();
        int kvHeads = spec.kvHeads();
        PagedAttentionKernel.DeviceCache cache = store.cache(block);
        int padded = cache.headDim();
        AttentionShape shape = new AttentionShape(queryHeads, kvHeads, padded);

        DeviceBuffer q = k.scratch.floats("attention.q", (long) rows * queryHeads * headDim);
        DeviceBuffer key = k.scratch.floats("attention.k", (long) rows * kvHeads * headDim);
        DeviceBuffer value = k.scratch.floats("attention.v", (long) rows * kvHeads * headDim);
        int rotaryDim = Math.max(0, spec.rotaryDim());
        DeviceBuffer positions = inputs.floatSlice(layout.positionsOffset(), rows);
        DeviceBuffer cacheRows = inputs.floatSlice(layout.cacheRowsOffset(), rows);
        List<GemvKernel.Product> products = List.of(new GemvKernel.Product(w.query(), q),
                new GemvKernel.Product(w.key(), key), new GemvKernel.Product(w.value(), value));
        if (ROPE_IN_PROJECTION && rows == 1 && layout.decodesOnly() && x.pending() != null && padded == headDim
                && k.matmul.gemv().takesRopeWrite(w.query(), w.key(), w.value(), headDim, rotaryDim)) {
            // One decode row: RoPE and the cache write end the q/k/v launch.
            k.matmul.gemv().projectResidualNorm(k.stream, x.pending(), products, new GemvKernel.RopeWrite(positions,
                    cacheRows, cache.keys(), cache.values(), cache.dtype(), headDim, rotaryDim, spec.ropeTheta()));
        } else {
            x.projectAll(k, rows, products.toArray(GemvKernel.Product[]::new));
            // RoPE on q and k, then k and v into their cache rows: one launch.
            k.pagedKv.ropeAndWrite(k.stream, q, queryHeads, key, value, headDim, rotaryDim, spec.ropeTheta(),
                    positions, cacheRows, rows, cache);
        }

        long queryFloats = (long) rows * queryHeads * padded;
        DeviceBuffer paddedQ = q;
        if (padded != headDim) {
            paddedQ = k.scratch.floats("attention.paddedQ", queryFloats);
            paddedQ.fillAsync(0, k.stream);
            DeviceCopy.rows(k.stream, q, headDim, 0, paddedQ, padded, 0, rows * queryHeads, headDim);
        }
        DeviceBuffer attended = k.scratch.floats("attention.out", queryFloats);
        int decodeRows = layout.decodeRows();
        if (decodeRows > 0) {
            int maxLength = layout.tableStride * cache.blockSize();
            PagedAttentionKernel.Split split = k.pagedAttention.plan(shape, decodeRows, maxLength);
            DeviceBuffer workspace = k.scratch.floats("attention.workspace", Math.max(1, split.workspaceFloats()));
            k.pagedAttention.launch(k.stream, shape, decodeRows, maxLength, spec.scale(), paddedQ, cache,
                    inputs.floatSlice(layout.decodeTablesOffset(), (long) decodeRows * layout.tableStride),
                    layout.tableStride, inputs.floatSlice(layout.decodeLengthsOffset(), decodeRows), workspace,
                    attended);
        }
        long rowFloats = (long) queryHeads * padded;
        if (layout.prompts() > 0 && StepLayout.packsPrompts()) {
            // Every prompt chunk at once: their keys gathered one sequence after another, their
            // queries (consecutive rows) converted together, one flash launch.
            int first = layout.firstRow[layout.decodes];
            int count = layout.promptRows();
            PackedKeys keys = layout.promptKeys(inputs);
            long kvBytes = 2L * keys.rows() * kvHeads * padded;
            DeviceBuffer keys16 = k.scratch.bytes("attention.keys16", kvBytes);
            DeviceBuffer values16 = k.scratch.bytes("attention.values16", kvBytes);
            k.pagedKv.gatherPacked(k.stream, cache.keys(), cache, keys, keys16);
            k.pagedKv.gatherPacked(k.stream, cache.values(), cache, keys, values16);
            DeviceBuffer q16 = k.scratch.bytes("attention.q16", 2 * count * rowFloats);
            k.convert.launch(k.stream, paddedQ.floatSlice(first * rowFloats, count * rowFloats), count * rowFloats,
                    DType.BF16, q16);
            k.flashAttention.launchPacked(k.stream, shape, layout.promptChunks(inputs), keys, spec.scale(), q16,
                    keys16, values16, attended.floatSlice(first * rowFloats, count * rowFloats));
        } else {
            for (int s = layout.decodes; s < layout.order.length; s++) {
                promptAlone(k, layout, s, inputs, cache, shape, spec.scale(), paddedQ, rowFloats, attended);
            }
        }
        DeviceBuffer merged = attended;
        if (padded != headDim) {
            merged = k.scratch.floats("attention.merged", (long) rows * queryHeads * headDim);
            DeviceCopy.rows(k.stream, attended, padded, 0, merged, headDim, 0, rows * queryHeads, headDim);
        }
        k.matmul.matmul(k.stream, merged, rows, w.output(), out);
    }

    /** Laid-out prompt chunk s's attention in launches of its own: its keys gathered, its queries converted, flash. */
    private static void promptAlone(DeviceKernels k, StepLayout layout, int s, DeviceBuffer inputs,
            PagedAttentionKernel.DeviceCache cache, AttentionShape shape, float scale, DeviceBuffer paddedQ,
            long rowFloats, DeviceBuffer attended) {
        int first = layout.firstRow[s];
        int count = layout.tokens(s);
        int past = layout.past(s);
        int positions = past + count;
        DeviceBuffer table = inputs.floatSlice(layout.tableOffset[s], Math.ceilDiv(positions, cache.blockSize()));
        long kvBytes = 2L * positions * shape.kvHeads() * shape.headDim();
        DeviceBuffer keys16 = k.scratch.bytes("attention.keys16", kvBytes);
        DeviceBuffer values16 = k.scratch.bytes("attention.values16", kvBytes);
        k.pagedKv.gather(k.stream, cache.keys(), cache, table, positions, keys16);
        k.pagedKv.gather(k.stream, cache.values(), cache, table, positions, values16);
        DeviceBuffer q16 = k.scratch.bytes("attention.q16", 2 * count * rowFloats);
        k.convert.launch(k.stream, paddedQ.floatSlice(first * rowFloats, count * rowFloats), count * rowFloats,
                DType.BF16, q16);
        k.flashAttention.launch(k.stream, shape, 1, count, past, scale, q16, keys16, values16,
                attended.floatSlice(first * rowFloats, count * rowFloats));
    }
}
