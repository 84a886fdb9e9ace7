package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.gpu.kernels.PackedChunks;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.gpu.kernels.SsmStateUpdateKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.ops.SsmShape;

/**
 * The Mamba-2 mixer over a serving step's rows, states in the cache's slots on the device:
 * z | xBC | dt = in_proj(u) for all rows at once; the decode rows' conv and state updates as one
 * batch over their slots; the prompt chunks' conv, dt and SSD scan packed, each chunk on its own
 * slot (one launch of each for all chunks; one scan a group of chunks with the same number of
 * scan chunks); then out = out_proj(gated_rmsnorm(y, z)) for all rows.
 */
final class StepMamba {

    private StepMamba() {
    }

    /** u: [rows, hidden] → out: [rows, hidden]; the slots' conv and SSM states advance. */
    static void forward(DeviceKernels k, GpuWeights.Mamba w, DeviceStateStore store, int block, StepLayout layout,
            DeviceBuffer inputs, StepInput u, DeviceBuffer out) {
        BlockSpec.Mamba spec = w.spec();
        SsmShape shape = new SsmShape(spec.heads(), spec.headDim(), spec.groups(), spec.stateSize());
        int rows = layout.rows;
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int heads = spec.heads();
        int groupWidth = spec.groups() * spec.stateSize();
        int width = spec.projectionWidth();

        DeviceBuffer projected = k.scratch.floats("mamba.projected", (long) rows * width);
        DeviceBuffer convolved = k.scratch.floats("mamba.convolved", (long) rows * channels);
        DeviceBuffer y = k.scratch.floats("mamba.y", (long) rows * inner);
        int decodeRows = layout.decodeRows();
        // A decode step of few rows: the conv update is the end of in_proj's launch.
        boolean convInProjection = layout.decodesOnly() && decodeRows == rows && u.fewRows(k, rows, w.inProjection());
        if (convInProjection) {
            u.projectWithConv(k, rows, w.inProjection(), projected, new GemvKernel.Conv(w.convWeight(), w.convBias(),
                    spec.convKernel(), store.convStates(block), inputs.floatSlice(layout.decodeSlotsOffset(), rows),
                    convolved, inner, channels));
        } else {
            u.project(k, rows, w.inProjection(), projected);
        }

        // A decode step whose out_proj makes the gated norm in its launch: the state update gates y.
        boolean gatedByUpdate = layout.decodesOnly() && decodeRows == rows && gatesInOutProjection(k, w, rows);
        if (decodeRows > 0) {
            decodeUpdates(k, w, decodeRows, projected, !convInProjection, store.convStates(block),
                    store.ssmStates(block), inputs.floatSlice(layout.decodeSlotsOffset(), decodeRows), convolved, y,
                    gatedByUpdate);
        }
        if (layout.prompts() > 0 && StepLayout.packsPrompts()) {
            prompts(k, w, store, block, layout, inputs, projected, convolved, y);
        } else {
            for (int s = layout.decodes; s < layout.order.length; s++) {
                promptAlone(k, w, store, block, layout, s, projected, convolved, y);
            }
        }
        gatedOutput(k, w, rows, y, projected, out, gatedByUpdate);
    }

    /**
     * The prompt chunks' conv (states carried in their slots), dt and SSD scan into y. They sit after
     * the decode rows, shortest first; chunks needing the same number of scan chunks are scanned in
     * one launch, so that no launch carries empty scan chunks of a shorter prompt.
     */
    private static void prompts(DeviceKernels k, GpuWeights.Mamba w, DeviceStateStore store, int block,
            StepLayout layout, DeviceBuffer inputs, DeviceBuffer projected, DeviceBuffer convolved, DeviceBuffer y) {
        BlockSpec.Mamba spec = w.spec();
        Widths widths = Widths.of(spec);
        SsmShape shape = widths.shape();
        int inner = widths.inner();
        int channels = widths.channels();
        int heads = spec.heads();
        int width = widths.projection();
        int first = layout.firstRow[layout.decodes];
        int count = layout.promptRows();
        PackedChunks chunks = layout.promptChunks(inputs);
        DeviceBuffer promptProjected = rowsOf(projected, width, first, count, 0, width);
        DeviceBuffer promptConvolved = rowsOf(convolved, channels, first, count, 0, channels);
        k.conv.launchPacked(k.stream, rowsOf(projected, width, first, count, inner, channels), width, channels,
                w.convWeight(), w.convBias(), spec.convKernel(), store.convStates(block), chunks, promptConvolved);
        DeviceBuffer dt = k.scratch.floats("mamba.dt", (long) count * heads);
        k.contextParallel.promptDtPacked(k.stream, promptProjected, width, spec.dtColumn(), w.dtBias(), spec.dtMin(),
                spec.dtMax(), heads, chunks, dt);
        SsdScanKernel.Inputs scanInputs = scanInputs(widths, convolved, dt, heads, first, count);
        DeviceBuffer promptY = y.floatSlice((long) first * inner, (long) count * inner);
        for (int from = 0; from < layout.prompts(); ) {
            int tokens = layout.tokens(layout.decodes + from);
            int chunkSize = scanChunk(tokens, spec.chunkSize());
            int scanChunks = Math.ceilDiv(tokens, chunkSize);
            int to = from + 1;
            while (to < layout.prompts()) {
                int next = layout.tokens(layout.decodes + to);
                if (scanChunk(next, spec.chunkSize()) != chunkSize || Math.ceilDiv(next, chunkSize) != scanChunks) {
                    break;
                }
                to++;
            }
            PackedChunks group = layout.promptChunks(inputs, from, to);
            DeviceBuffer workspace = k.scratch.bytes("mamba.ssd",
                    SsdScanKernel.workspaceBytes(shape, group.chunks(), group.longest(), chunkSize));
            k.ssdScan.launchPacked(k.stream, k.scanPrecision, shape, chunkSize, scanInputs, w.decay(),
                    w.skip(), store.ssmStates(block), group, promptY, workspace);
            from = to;
        }
    }

    /**
     * The SSD scan's chunk for a prompt chunk of {@code tokens} tokens: the model's chunk size, or for
     * a prompt chunk that fits one scan chunk, its length rounded up to 64 (the kernels' tile). The
     * scan's result does not depend on the chunk size beyond rounding, and a single chunk padded to
     * the model's 256 spent most of its Gram matrix and output products on padding: a 128-token
     * chunk's scan took half the device time of a 128-token prompt step. It depends on the prompt
     * chunk's own length only, so a sequence's scan is the same whatever shares its step.
     */
    static int scanChunk(int tokens, int modelChunk) {
        if (tokens >= modelChunk) {
            return modelChunk;
        }
        return Math.min(modelChunk, Math.ceilDiv(Math.max(tokens, 1), 64) * 64);
    }

    /** Laid-out prompt chunk s's conv, dt and SSD scan in launches of its own. */
    private static void promptAlone(DeviceKernels k, GpuWeights.Mamba w, DeviceStateStore store, int block,
            StepLayout layout, int s, DeviceBuffer projected, DeviceBuffer convolved, DeviceBuffer y) {
        BlockSpec.Mamba spec = w.spec();
        Widths widths = Widths.of(spec);
        int inner = widths.inner();
        int channels = widths.channels();
        int width = widths.projection();
        int first = layout.firstRow[s];
        int count = layout.tokens(s);
        int slot = layout.segment(s).sequence().slot();
        DeviceBuffer x = rowsOf(convolved, channels, first, count, 0, channels);
        k.conv.launch(k.stream, rowsOf(projected, width, first, count, inner, channels), width, count, channels,
                w.convWeight(), w.convBias(), spec.convKernel(), store.convState(block, slot), x);
        DeviceBuffer dt = k.scratch.floats("mamba.dt", (long) count * spec.heads());
        k.contextParallel.promptDt(k.stream, rowsOf(projected, width, first, count, 0, width), width, spec.dtColumn(),
                w.dtBias(), spec.dtMin(), spec.dtMax(), count, spec.heads(), layout.segment(s).clampedTokens(), dt);
        SsdScanKernel.Inputs scanInputs = scanInputs(widths, convolved, dt, spec.heads(), first, count);
        int chunkSize = scanChunk(count, spec.chunkSize());
        DeviceBuffer workspace = k.scratch.bytes("mamba.ssd",
                SsdScanKernel.workspaceBytes(widths.shape(), 1, count, chunkSize));
        k.ssdScan.launch(k.stream, k.scanPrecision, widths.shape(), 1, count, chunkSize, scanInputs,
                w.decay(), w.skip(), store.ssmState(block, slot), null,
                y.floatSlice((long) first * inner, (long) count * inner), workspace);
    }

    /**
     * True when out_proj of {@code rows} rows makes the gated norm inside its launch (the few-rows
     * product takes it, and a norm of that shape is worth fusing: {@link GemvKernel#fusesGatedNorm}).
     */
    static boolean gatesInOutProjection(DeviceKernels k, GpuWeights.Mamba w, int rows) {
        BlockSpec.Mamba spec = w.spec();
        return GemvKernel.fusesGatedNorm(spec.innerSize(), spec.normGroupSize()) && k.matmul.gemv().supports(rows,
                w.outProjection(), new GemvKernel.Norm(w.norm(), spec.normGroupSize(), spec.normEps()));
    }

    /**
     * One new token for each of {@code rows} sequences (their state slots in {@code slots}): the conv
     * update of in_proj's xBC columns into convolved (unless in_proj's launch already made it), then
     * the selective state update into y, or y · silu(z) when {@code gated} (z: in_proj's first inner
     * columns). projected: [rows, in_proj width]; convolved: [rows, conv channels]; y: [rows, inner].
     */
    static void decodeUpdates(DeviceKernels k, GpuWeights.Mamba w, int rows, DeviceBuffer projected, boolean conv,
            DeviceBuffer convStates, DeviceBuffer ssmStates, DeviceBuffer slots, DeviceBuffer convolved,
            DeviceBuffer y, boolean gated) {
        BlockSpec.Mamba spec = w.spec();
        SsmShape shape = new SsmShape(spec.heads(), spec.headDim(), spec.groups(), spec.stateSize());
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int groupWidth = spec.groups() * spec.stateSize();
        int width = spec.projectionWidth();
        if (conv) {
            k.convUpdate.launch(k.stream, rowsOf(projected, width, 0, rows, inner, channels), width, rows, channels,
                    w.convWeight(), w.convBias(), spec.convKernel(), convStates, slots, convolved);
        }
        SsmStateUpdateKernel.Step step = new SsmStateUpdateKernel.Step(
                rowsOf(projected, width, 0, rows, spec.dtColumn(), spec.heads()), width, w.dtBias(), true);
        k.ssmUpdate.launch(k.stream, shape, rows, convolved, channels, step, w.decay(),
                rowsOf(convolved, channels, 0, rows, inner, groupWidth),
                rowsOf(convolved, channels, 0, rows, inner + groupWidth, groupWidth), channels, w.skip(), ssmStates,
                slots, y, gated ? rowsOf(projected, width, 0, rows, 0, inner) : null, width);
    }

    /**
     * out = out_proj(gated_rmsnorm(y, z)) for [rows, inner] y, z read where in_proj wrote it (the
     * first inner columns of each projected row): inside out_proj's launch when the few-rows product
     * takes it, else the gated norm writes out_proj's operand type directly. {@code yGated}: y holds
     * y · silu(z) already (only where the few-rows product takes out_proj, {@link #gatesInOutProjection}).
     */
    static void gatedOutput(DeviceKernels k, GpuWeights.Mamba w, int rows, DeviceBuffer y, DeviceBuffer projected,
            DeviceBuffer out, boolean yGated) {
        BlockSpec.Mamba spec = w.spec();
        int inner = spec.innerSize();
        int width = spec.projectionWidth();
        GemvKernel.Norm norm = new GemvKernel.Norm(w.norm(), spec.normGroupSize(), spec.normEps());
        if (gatesInOutProjection(k, w, rows)) {
            k.matmul.gemv().projectGatedNorm(k.stream, y, inner, yGated ? null : projected, width, norm, rows,
                    new GemvKernel.Product(w.outProjection(), out));
            return;
        }
        if (yGated) {
            throw new IllegalStateException("y was gated for an out_proj launch that does not take it");
        }
        DType gatedType = StepInput.bf16For(w.outProjection()) ? DType.BF16 : DType.F32;
        DeviceBuffer gated = gatedType == DType.F32 ? y : k.scratch.bytes("mamba.gated16", 2L * rows * inner);
        k.gatedRmsNorm.launch(k.stream, y, projected, width, rows, inner, spec.normGroupSize(), w.norm(),
                spec.normEps(), gated, gatedType);
        new StepInput(gated, gatedType).project(k, rows, w.outProjection(), out);
    }

    /** The SSD scan's inputs for rows [first, first + count): x, B and C in the conv's output, and dt. */
    private static SsdScanKernel.Inputs scanInputs(Widths widths, DeviceBuffer convolved, DeviceBuffer dt, int heads,
            int first, int count) {
        int channels = widths.channels();
        int inner = widths.inner();
        int group = widths.group();
        return new SsdScanKernel.Inputs(rowsOf(convolved, channels, first, count, 0, channels), channels, dt, heads,
                rowsOf(convolved, channels, first, count, inner, group),
                rowsOf(convolved, channels, first, count, inner + group, group), channels);
    }

    /** A Mamba-2 block's widths: its SSM shape, d_inner, the conv's channels, B's and C's, in_proj's output. */
    private record Widths(SsmShape shape, int inner, int channels, int group, int projection) {

        static Widths of(BlockSpec.Mamba spec) {
            return new Widths(new SsmShape(spec.heads(), spec.headDim(), spec.groups(), spec.stateSize()),
                    spec.innerSize(), spec.convChannels(), spec.groups() * spec.stateSize(), spec.projectionWidth());
        }
    }

    /** Columns [column, column + width) of rows [first, first + count) of a buffer with rows of {@code stride} floats. */
    static DeviceBuffer rowsOf(DeviceBuffer buffer, int stride, int first, int count, int column, int width) {
        return buffer.floatSlice((long) first * stride + column, count == 0 ? 0 : (long) (count - 1) * stride + width);
    }
}
