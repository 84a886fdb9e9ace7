package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.PagedAttentionKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.ops.AttentionShape;

/**
 * The attention mixer of {@code AttentionMixer} on the device, for one sequence: q, k, v
 * projections, RoPE at the sequence's positions, k and v appended to its f32 store, then flash
 * attention for a prompt (q and the store's prefix rounded to bf16, f32 accumulation) or the paged
 * decode kernel for one generated token (f32 store, f32 q), then o_proj.
 *
 * <p>Both kernels compile head dims 64 and 128; a smaller head is zero-padded to 64 (q, k and v
 * alike): the zero columns add nothing to q·k and give zero output columns, which are dropped.
 */
final class GpuAttention {

    private GpuAttention() {
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

    /** x: [rows, hidden] f32 → out: [rows, hidden] f32; rows are at positions past .. past + rows. */
    static void forward(DeviceKernels k, GpuWeights.Attention w, GpuSequence sequence,
            GpuSequence.AttentionState state, DeviceBuffer x, int rows, boolean prompt, DeviceBuffer out) {
        BlockSpec.Attention spec = w.spec();
        int headDim = spec.headDim();
        int padded = paddedHeadDim(headDim);
        int queryHeads = spec.queryHeads();
        int kvHeads = spec.kvHeads();
        int past = sequence.length();
        AttentionShape shape = new AttentionShape(queryHeads, kvHeads, padded);

        DeviceBuffer q = k.scratch.floats("attention.q", (long) rows * queryHeads * headDim);
        DeviceBuffer key = k.scratch.floats("attention.k", (long) rows * kvHeads * headDim);
        DeviceBuffer value = k.scratch.floats("attention.v", (long) rows * kvHeads * headDim);
        k.matmul.matmul(k.stream, x, rows, w.query(), q);
        k.matmul.matmul(k.stream, x, rows, w.key(), key);
        k.matmul.matmul(k.stream, x, rows, w.value(), value);
        if (spec.rotaryDim() > 0) {
            k.rope.launch(k.stream, q, rows, queryHeads, headDim, spec.rotaryDim(), spec.ropeTheta(), past);
            k.rope.launch(k.stream, key, rows, kvHeads, headDim, spec.rotaryDim(), spec.ropeTheta(), past);
        }
        PagedAttentionKernel.DeviceCache cache = state.cache();
        long rowFloats = (long) kvHeads * padded;
        DeviceCopy.rows(k.stream, key, headDim, 0, cache.keys().floatSlice(past * rowFloats, rows * rowFloats), padded,
                0, rows * kvHeads, headDim);
        DeviceCopy.rows(k.stream, value, headDim, 0, cache.values().floatSlice(past * rowFloats, rows * rowFloats),
                padded, 0, rows * kvHeads, headDim);

        long queryFloats = (long) rows * queryHeads * padded;
        DeviceBuffer paddedQ = k.scratch.floats("attention.paddedQ", queryFloats);
        if (padded != headDim) {
            paddedQ.fillAsync(0, k.stream);
        }
        DeviceCopy.rows(k.stream, q, headDim, 0, paddedQ, padded, 0, rows * queryHeads, headDim);
        DeviceBuffer attended = k.scratch.floats("attention.out", queryFloats);
        if (prompt) {
            long keyFloats = (past + rows) * rowFloats;
            DeviceBuffer q16 = k.scratch.bytes("attention.q16", 2 * queryFloats);
            DeviceBuffer keys16 = k.scratch.bytes("attention.keys16", 2 * keyFloats);
            DeviceBuffer values16 = k.scratch.bytes("attention.values16", 2 * keyFloats);
            k.convert.launch(k.stream, paddedQ, queryFloats, DType.BF16, q16);
            k.convert.launch(k.stream, cache.keys(), keyFloats, DType.BF16, keys16);
            k.convert.launch(k.stream, cache.values(), keyFloats, DType.BF16, values16);
            k.flashAttention.launch(k.stream, shape, 1, rows, past, spec.scale(), q16, keys16, values16, attended);
        } else {
            if (rows != 1) {
                throw new IllegalArgumentException("a decode step takes one token per sequence, not " + rows);
            }
            int maxLength = sequence.capacity();
            PagedAttentionKernel.Split split = k.pagedAttention.plan(shape, 1, maxLength);
            DeviceBuffer lengths = k.scratch.floats("attention.lengths", 1);
            lengths.fillAsync(past + 1, k.stream);
            DeviceBuffer workspace = k.scratch.floats("attention.workspace", split.workspaceFloats());
            k.pagedAttention.launch(k.stream, shape, 1, maxLength, spec.scale(), paddedQ, cache, sequence.blockTable,
                    maxLength / GpuSequence.BLOCK_SIZE, lengths, workspace, attended);
        }
        DeviceBuffer merged = k.scratch.floats("attention.merged", (long) rows * queryHeads * headDim);
        DeviceCopy.rows(k.stream, attended, padded, 0, merged, headDim, 0, rows * queryHeads, headDim);
        k.matmul.matmul(k.stream, merged, rows, w.output(), out);
    }
}
