package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.ops.SsmShape;

/**
 * Launches the Mamba-2 SSD chunked scan for prefill (ssd_scan*.cu): the contract of
 * {@code Ops.ssdScan} for one or more sequences of the same length, each starting from the f32
 * state in its slot of a pool and leaving its final state there. Four kernels per launch: the
 * chunks' Gram matrices C·Bᵀ, the state each chunk adds on its own, the state entering each chunk
 * (sequential over chunks, parallel over state elements), and the outputs from the entering state
 * plus the chunk's own tokens.
 *
 * <p>The products run on the tensor cores in one of two {@link Precision}s; sums, decays and the
 * carried state are f32 throughout. In TF32 a block of the chunk-state and output kernels serves two
 * heads of a group, which share its B, C and Gram tiles; the split-tf32 kernels need the registers
 * for one head a block. The two-head TF32 chunk states and outputs, and the F32 chunk states, run on
 * Hopper's warpgroup MMAs (ssd_scan_states_warpgroup.cu, ssd_scan_output_warpgroup.cu; the mma.sync
 * kernels on other GPUs) where x, B, C and their strides allow 16-byte copies, else on mma.sync.
 *
 * <p>The chunk-state kernel runs beside the Gram kernel (a programmatic launch where the device has
 * it): neither reads what the other writes, and its grid ends only after the Gram kernel's.
 */
public final class SsdScanKernel {

    /** SSD_MAX_CHUNK: the most tokens a chunk may hold. */
    public static final int MAX_CHUNK = 256;

    private static final int THREADS = 256;
    private static final int SLICE = 32;
    private static final int ALIGNMENT = 256;
    /** SSD_PASSING_COLUMNS: the columns of the state each thread of the passing kernel carries. */
    private static final int PASSING_COLUMNS = 2;
    /** sizeof(SsdSums): 8 warp totals in double, then high, low and dt of each token of a chunk. */
    private static final int SUMS_BYTES = 8 * Double.BYTES + 3 * MAX_CHUNK * Float.BYTES;
    /** SSD_GRAM_SHARED_BYTES: two stages of a 64 × 32 slice of C and a 256 × 32 slice of B, rows of 36. */
    static final int GRAM_SHARED_BYTES = 2 * (64 + MAX_CHUNK) * 36 * Float.BYTES;

    /** SSD_STATE_SHARED_BYTES(heads): per head sums and factors; two stages of B (32 × 136) and per head x (32 × 72). */
    static int stateSharedBytes(int heads) {
        return heads * (SUMS_BYTES + MAX_CHUNK * Float.BYTES) + 2 * (SLICE * 136 + heads * SLICE * 72) * Float.BYTES;
    }

    /**
     * SSD_OUT_SHARED_BYTES(heads, stages): per head sums; per stage a 256 × 36 tile, and per head a
     * 64 × 36 tile and 32 column factors.
     */
    static int outputSharedBytes(int heads, int stages) {
        return heads * SUMS_BYTES + stages * (MAX_CHUNK * 36 + heads * (64 * 36 + SLICE)) * Float.BYTES;
    }

    /**
     * SSD_STATE_WARPGROUP_SHARED_BYTES(split), or the mma.sync kernel's need where larger (its body
     * runs on GPUs without warpgroup MMAs): per head (two, or one with split) sums and factors; 1024
     * bytes of alignment; a 128 × 128-byte B tile (two with split); two staging stages of 32 rows of
     * B (136 floats) and per head of x (72 floats).
     */
    static int warpgroupStateSharedBytes(boolean split) {
        int heads = split ? 1 : 2;
        int own = heads * (SUMS_BYTES + MAX_CHUNK * Float.BYTES) + 1024 + (split ? 2 : 1) * 128 * 128
                + 2 * SLICE * (136 + heads * 72) * Float.BYTES;
        return Math.max(own, stateSharedBytes(heads));
    }

    /**
     * SSD_WARPGROUP_SHARED_BYTES(2, 2), or the three-stage mma.sync pair kernel's need where larger
     * (its body runs on GPUs without warpgroup MMAs): per head sums; 1024 bytes of alignment; per
     * stage a 256 × 128-byte tile, and per head two 64 × 128-byte tiles and 8 KiB of x.
     */
    static int warpgroupOutputSharedBytes() {
        int heads = 2;
        int stages = 2;
        int own = heads * SUMS_BYTES + 1024
                + stages * (MAX_CHUNK * 128 + heads * 2 * 64 * 128 + heads * SLICE * 64 * Float.BYTES);
        return Math.max(own, outputSharedBytes(heads, 3));
    }

    /**
     * One variant of the chunk-state and output kernels: how many heads of a group a block serves
     * (sharing their B, C and Gram tiles), and the two kernels with their shared memory.
     */
    private record Variant(Kernel chunkState, Kernel output, int heads, int stateSharedBytes,
            int outputSharedBytes) {

        static Variant load(KernelModule module, String stateSuffix, String outputSuffix, int heads,
                int stateSharedBytes, int outputSharedBytes) {
            Variant variant = new Variant(module.kernel("ssd_chunk_state_" + stateSuffix),
                    module.kernel("ssd_chunk_output_" + outputSuffix), heads, stateSharedBytes, outputSharedBytes);
            variant.chunkState.allowDynamicSharedBytes(stateSharedBytes);
            // Beside the Gram kernel, which it does not read (ssd_scan_states.cu).
            variant.chunkState.waitsForPreviousKernel();
            variant.output.allowDynamicSharedBytes(outputSharedBytes);
            return variant;
        }

        /** The mma.sync output kernel of `stages` copy stages. */
        static Variant mma(KernelModule module, String suffix, int heads, int stages) {
            return load(module, suffix, suffix, heads, SsdScanKernel.stateSharedBytes(heads),
                    SsdScanKernel.outputSharedBytes(heads, stages));
        }

        /** Two heads a block, the warpgroup chunk-state and output kernels. */
        static Variant warpgroupPair(KernelModule module) {
            return load(module, "tf32_warpgroup_pair", "tf32_warpgroup_pair", 2, warpgroupStateSharedBytes(false),
                    warpgroupOutputSharedBytes());
        }

        /** Split-tf32, one head a block: the warpgroup chunk-state kernel, the mma.sync output kernel. */
        static Variant warpgroupSplit(KernelModule module) {
            return load(module, "f32_warpgroup", "f32", 1, warpgroupStateSharedBytes(true),
                    SsdScanKernel.outputSharedBytes(1, 3));
        }
    }

    /** How the matrix products treat their f32 operands. */
    public enum Precision {
        /**
         * Each operand split into two tf32 parts and each product taken as three tf32 products:
         * about float32's error, at three times the tensor-core work.
         */
        F32("f32"),
        /**
         * f32 operands read as tf32 by the tensor cores (truncated to 11 significant bits) and f32
         * accumulation: relative errors near 1e-3, the fastest.
         */
        TF32("tf32");

        private final String suffix;

        Precision(String suffix) {
            this.suffix = suffix;
        }
    }

    /**
     * Where the token-major inputs live. Row r = sequence · tokens + token of each is {@code stride}
     * floats after row r − 1, so x, B and C may be column ranges of one wider row (the conv output).
     * x: (rows, heads · headDim); dt: (rows, heads), already softplus'd and clamped;
     * B, C: (rows, groups · stateSize), sharing bcStride.
     */
    public record Inputs(DeviceBuffer x, int xStride, DeviceBuffer dt, int dtStride, DeviceBuffer B, DeviceBuffer C,
            int bcStride) {

        /** Inputs stored densely, as {@code Ops.ssdScan} takes them. */
        public static Inputs contiguous(SsmShape shape, DeviceBuffer x, DeviceBuffer dt, DeviceBuffer B,
                DeviceBuffer C) {
            return new Inputs(x, shape.innerSize(), dt, shape.heads(), B, C, shape.groups() * shape.stateSize());
        }
    }

    private final Kernel[] gram = new Kernel[Precision.values().length];
    private final Variant[] variants = new Variant[Precision.values().length];
    /** The TF32 pair variant with the warpgroup kernels, or null where mma.sync serves every launch. */
    private final Variant warpgroupTf32;
    /** The F32 variant with the warpgroup chunk-state kernel, or null where mma.sync serves every launch. */
    private final Variant warpgroupF32;
    private final Kernel passing;
    private final Kernel enter;

    public SsdScanKernel(KernelModule module) {
        this(module, 2, true);
    }

    /**
     * tf32HeadsPerBlock: 2 (two heads of a group a block, the fast variant) or 1 (one head a block,
     * as the split-tf32 kernels always run); warpgroup: whether launches take the warpgroup kernels
     * (two-head TF32 chunk states and outputs, F32 chunk states) where the inputs allow it. For tests
     * and benchmarks to reach every kernel.
     */
    SsdScanKernel(KernelModule module, int tf32HeadsPerBlock, boolean warpgroup) {
        for (Precision precision : Precision.values()) {
            int index = precision.ordinal();
            gram[index] = module.kernel("ssd_chunk_gram_" + precision.suffix);
            gram[index].allowDynamicSharedBytes(GRAM_SHARED_BYTES);
        }
        variants[Precision.F32.ordinal()] = Variant.mma(module, "f32", 1, 3);
        variants[Precision.TF32.ordinal()] = switch (tf32HeadsPerBlock) {
            case 1 -> Variant.mma(module, "tf32", 1, 2);
            case 2 -> Variant.mma(module, "tf32_pair", 2, 3);
            default -> throw new IllegalArgumentException("tf32HeadsPerBlock must be 1 or 2, not " + tf32HeadsPerBlock);
        };
        warpgroupTf32 = warpgroup && tf32HeadsPerBlock == 2 ? Variant.warpgroupPair(module) : null;
        warpgroupF32 = warpgroup ? Variant.warpgroupSplit(module) : null;
        this.passing = module.kernel("ssd_state_passing");
        this.enter = module.kernel("ssd_enter_state");
    }

    /**
     * Bytes of device scratch one launch needs: every chunk's state (heads · headDim · stateSize
     * floats), Gram matrix (groups · padded² floats, padded = chunkSize rounded up to 64) and decay.
     */
    public static long workspaceBytes(SsmShape shape, int sequences, int tokens, int chunkSize) {
        return new Layout(shape, sequences, tokens, chunkSize).bytes;
    }

    /**
     * For each sequence b (state in slot slots[b], or slot b when {@code slots} is null) and head h
     * (group g = h / (heads / groups)), over its tokens in order:
     * S = exp(dt·A[h])·S + dt·x ⊗ B[g]; y = S·C[g] + D[h]·x.
     * A, D: (heads); pool: (slots, heads, headDim, stateSize) f32, updated in place; slots: (sequences)
     * int32 on the device, distinct and within the pool (not checked on the device);
     * y: (sequences · tokens, heads · headDim), dense; workspace: at least {@link #workspaceBytes},
     * starting on a 16-byte boundary. chunkSize (1 to {@value #MAX_CHUNK}) changes only rounding.
     */
    public void launch(CudaStream stream, Precision precision, SsmShape shape, int sequences, int tokens, int chunkSize,
            Inputs inputs, DeviceBuffer A, DeviceBuffer D, DeviceBuffer pool, DeviceBuffer slots, DeviceBuffer y,
            DeviceBuffer workspace) {
        launch(stream, precision, shape, sequences, tokens, chunkSize, inputs, A, D, pool, slots, y, workspace, null);
    }

    /** As above; with {@code marks} (5 events), records them around the four kernels, for timing each. */
    void launch(CudaStream stream, Precision precision, SsmShape shape, int sequences, int tokens, int chunkSize,
            Inputs inputs, DeviceBuffer A, DeviceBuffer D, DeviceBuffer pool, DeviceBuffer slots, DeviceBuffer y,
            DeviceBuffer workspace, CudaEvent[] marks) {
        launch(stream, precision, shape, sequences, tokens, null, chunkSize, inputs, A, D, pool, slots, y, workspace,
                marks, true, true);
    }

    /**
     * {@link #launch} for prompt chunks of different lengths packed one after another: chunk s of
     * {@code chunks} is a sequence of its own, rows starts[s] .. starts[s + 1] - 1 of the inputs and
     * of y, its state in slot slots[s] of the pool. Each chunk's y and final state are those of a
     * launch for it alone, bit for bit: a shorter chunk's scan chunks past its end are empty, and an
     * empty one passes the state on unchanged. workspace: {@link #workspaceBytes} for chunks.chunks()
     * sequences of chunks.longest() tokens; the inputs and y hold rows up to chunks.end().
     */
    public void launchPacked(CudaStream stream, Precision precision, SsmShape shape, int chunkSize, Inputs inputs,
            DeviceBuffer A, DeviceBuffer D, DeviceBuffer pool, PackedChunks chunks, DeviceBuffer y,
            DeviceBuffer workspace) {
        launch(stream, precision, shape, chunks.chunks(), chunks.longest(), chunks, chunkSize, inputs, A, D, pool,
                chunks.slots(), y, workspace, null, true, true);
    }

    /**
     * The first half of {@link #launch} for one sequence whose entering state is not known yet (a
     * shard of a context-parallel prompt): the Gram matrices, each chunk's own state and their
     * passing from the state in {@code state} (zeros: a scan from zero), which ends there; the
     * entering state of every chunk stays in {@code workspace} for {@link #enterState} and
     * {@link #launchOutputs}. Arguments as {@link #launch}'s, state: (heads, headDim, stateSize).
     */
    public void launchStates(CudaStream stream, Precision precision, SsmShape shape, int tokens, int chunkSize,
            Inputs inputs, DeviceBuffer A, DeviceBuffer D, DeviceBuffer state, DeviceBuffer y,
            DeviceBuffer workspace) {
        launch(stream, precision, shape, 1, tokens, null, chunkSize, inputs, A, D, state, null, y, workspace, null,
                true, false);
    }

    /**
     * The state that really entered the sequence, added where {@link #launchStates} left a scan from
     * zero: every chunk's entering state gains (decay of the chunks before it) · entering, and
     * leaving = finalFromZero + (decay of all chunks) · entering is the state after the sequence.
     * The recurrence is linear in its state, so the outputs {@link #launchOutputs} then computes are
     * those of a scan from {@code entering}. entering, finalFromZero, leaving: (heads, headDim,
     * stateSize); leaving may be finalFromZero.
     */
    public void enterState(CudaStream stream, SsmShape shape, int tokens, int chunkSize, DeviceBuffer workspace,
            DeviceBuffer entering, DeviceBuffer finalFromZero, DeviceBuffer leaving) {
        Layout layout = new Layout(shape, 1, tokens, chunkSize);
        long floats = shape.stateFloats();
        workspace.requireBytes(layout.bytes, "workspace");
        entering.requireFloats(floats, "entering");
        finalFromZero.requireFloats(floats, "finalFromZero");
        leaving.requireFloats(floats, "leaving");
        int headState = shape.headDim() * shape.stateSize();
        enter.launch(stream, ceilDiv((int) floats, THREADS), 1, 1, THREADS, 0, workspace.slice(0, layout.stateBytes),
                workspace.slice(layout.decayOffset, layout.decayBytes), entering, finalFromZero, leaving,
                layout.chunks, shape.heads(), headState);
    }

    /** The second half of {@link #launch} after {@link #launchStates}: every chunk's outputs, into y. */
    public void launchOutputs(CudaStream stream, Precision precision, SsmShape shape, int tokens, int chunkSize,
            Inputs inputs, DeviceBuffer A, DeviceBuffer D, DeviceBuffer state, DeviceBuffer y,
            DeviceBuffer workspace) {
        launch(stream, precision, shape, 1, tokens, null, chunkSize, inputs, A, D, state, null, y, workspace, null,
                false, true);
    }

    /** packed: null for sequences of `tokens` tokens each, else the chunks (their starts go to the kernels). */
    private void launch(CudaStream stream, Precision precision, SsmShape shape, int sequences, int tokens,
            PackedChunks packed, int chunkSize, Inputs inputs, DeviceBuffer A, DeviceBuffer D, DeviceBuffer pool,
            DeviceBuffer slots, DeviceBuffer y, DeviceBuffer workspace, CudaEvent[] marks, boolean statesStage,
            boolean outputStage) {
        Layout layout = new Layout(shape, sequences, tokens, chunkSize);
        int heads = shape.heads();
        int inner = shape.innerSize();
        int groupWidth = shape.groups() * shape.stateSize();
        long rows = packed == null ? (long) sequences * tokens : packed.end();
        DeviceBuffer starts = packed == null ? null : packed.starts();
        if (rows > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("sequences × tokens = " + rows + " rows is beyond the supported "
                    + Integer.MAX_VALUE);
        }
        RowKernels.requireStride(inputs.xStride(), inner, "xStride");
        RowKernels.requireStride(inputs.dtStride(), heads, "dtStride");
        RowKernels.requireStride(inputs.bcStride(), groupWidth, "bcStride");
        inputs.x().requireFloats(RowKernels.spanned((int) rows, inner, inputs.xStride()), "x");
        inputs.dt().requireFloats(RowKernels.spanned((int) rows, heads, inputs.dtStride()), "dt");
        inputs.B().requireFloats(RowKernels.spanned((int) rows, groupWidth, inputs.bcStride()), "B");
        inputs.C().requireFloats(RowKernels.spanned((int) rows, groupWidth, inputs.bcStride()), "C");
        A.requireFloats(heads, "A");
        D.requireFloats(heads, "D");
        pool.requireFloats(slots == null ? (long) sequences * shape.stateFloats() : shape.stateFloats(), "pool");
        if (slots != null) {
            slots.requireFloats(sequences, "slots");
        }
        y.requireFloats(rows * inner, "y");
        workspace.requireBytes(layout.bytes, "workspace");
        if (workspace.address() % 16 != 0) {
            throw new IllegalArgumentException("workspace must start on a 16-byte boundary (the kernels copy it 16 "
                    + "bytes at a time); it starts at an offset of " + workspace.address() % 16);
        }
        if (marks != null && marks.length != 5) {
            throw new IllegalArgumentException("marks: 5 events expected, got " + marks.length);
        }
        if (rows == 0) {
            return;
        }

        int index = precision.ordinal();
        DeviceBuffer states = workspace.slice(0, layout.stateBytes);
        DeviceBuffer grams = workspace.slice(layout.gramOffset, layout.gramBytes);
        DeviceBuffer decays = workspace.slice(layout.decayOffset, layout.decayBytes);
        long xStride = inputs.xStride();
        long dtStride = inputs.dtStride();
        long bcStride = inputs.bcStride();
        int headDim = shape.headDim();
        int stateSize = shape.stateSize();
        int pTiles = ceilDiv(headDim, 64);
        int nTiles = ceilDiv(stateSize, 128);
        int headState = headDim * stateSize;
        int width = headState % 4 == 0 && pool.address() % 16 == 0 ? 4 : 1;

        Variant warpgroupVariant = precision == Precision.TF32 ? warpgroupTf32 : warpgroupF32;
        Variant variant = warpgroupVariant != null && copiesBy16Bytes(inputs, shape) ? warpgroupVariant
                : variants[index];
        int groups = shape.groups();
        int sets = ceilDiv(heads / groups, variant.heads());

        mark(marks, 0, stream);
        if (!statesStage) {
            variant.output().launch(stream, grid((long) pTiles * sets, groups, layout.chunksTotal), 1, 1,
                    THREADS * variant.heads(), variant.outputSharedBytes(), inputs.x(),
                    xStride, inputs.dt(), dtStride, A, inputs.C(), bcStride, D, grams, states, y, tokens, starts,
                    layout.chunk, layout.chunks, heads, headDim, groups, stateSize, layout.padded);
            return;
        }
        gram[index].launch(stream, grid(layout.padded / 64, groups, layout.chunksTotal), 1, 1, THREADS,
                GRAM_SHARED_BYTES, inputs.B(), inputs.C(), bcStride, grams, tokens, starts, layout.chunk,
                layout.chunks, groups, stateSize, layout.padded);
        mark(marks, 1, stream);
        variant.chunkState().launch(stream, grid((long) pTiles * nTiles * sets, groups, layout.chunksTotal), 1, 1,
                THREADS, variant.stateSharedBytes(), inputs.x(), xStride, inputs.dt(), dtStride, A, inputs.B(),
                bcStride, states, decays, tokens, starts, layout.chunk, layout.chunks, heads, headDim, groups,
                stateSize);
        mark(marks, 2, stream);
        passing.launch(stream, grid(ceilDiv(headState / width, THREADS * PASSING_COLUMNS), heads, sequences), 1, 1,
                THREADS, 0, states, decays, pool, slots, sequences, layout.chunks, heads, headState, width);
        mark(marks, 3, stream);
        if (!outputStage) {
            return;
        }
        variant.output().launch(stream, grid((long) pTiles * sets, groups, layout.chunksTotal), 1, 1,
                THREADS * variant.heads(), variant.outputSharedBytes(), inputs.x(),
                xStride, inputs.dt(), dtStride, A, inputs.C(), bcStride, D, grams, states, y, tokens, starts,
                layout.chunk, layout.chunks, heads, headDim, groups, stateSize, layout.padded);
        mark(marks, 4, stream);
    }

    /**
     * Whether the warpgroup kernels can read x, B, C and the chunk states 16 bytes at a time:
     * buffers on 16 bytes, row strides, head dim and state size multiples of 4 floats (the
     * workspace is checked on 16 bytes by every launch).
     */
    private static boolean copiesBy16Bytes(Inputs inputs, SsmShape shape) {
        return inputs.x().address() % 16 == 0 && inputs.B().address() % 16 == 0 && inputs.C().address() % 16 == 0
                && inputs.xStride() % 4 == 0
                && inputs.bcStride() % 4 == 0 && shape.headDim() % 4 == 0 && shape.stateSize() % 4 == 0;
    }

    private static void mark(CudaEvent[] marks, int index, CudaStream stream) {
        if (marks != null) {
            marks[index].record(stream);
        }
    }

    /** Blocks of a grid flattened into x: a · b · c, within CUDA's limit. */
    private static int grid(long a, long b, long c) {
        long blocks = a * b * c;
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("the SSD scan needs " + blocks + " blocks, beyond CUDA's "
                    + Integer.MAX_VALUE + "; split the prompt into fewer tokens per launch");
        }
        return (int) blocks;
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    private static long align(long bytes) {
        return (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    /** Chunk counts and where each scratch array sits in the workspace. */
    private static final class Layout {
        final int chunk;
        final int chunks;
        final long chunksTotal;
        final int padded;
        final long stateBytes;
        final long gramOffset;
        final long gramBytes;
        final long decayOffset;
        final long decayBytes;
        final long bytes;

        Layout(SsmShape shape, int sequences, int tokens, int chunkSize) {
            if (chunkSize < 1 || chunkSize > MAX_CHUNK) {
                throw new IllegalArgumentException("chunkSize must be 1 to " + MAX_CHUNK + " (a chunk's tokens are "
                        + "held by one block of the kernels), not " + chunkSize);
            }
            RowKernels.requireNonNegative(sequences, "sequences");
            RowKernels.requireNonNegative(tokens, "tokens");
            chunk = chunkSize;
            chunks = ceilDiv(tokens, chunkSize);
            chunksTotal = (long) sequences * chunks;
            padded = ceilDiv(chunkSize, 64) * 64;
            stateBytes = chunksTotal * shape.stateFloats() * Float.BYTES;
            gramOffset = align(stateBytes);
            gramBytes = chunksTotal * shape.groups() * padded * padded * Float.BYTES;
            decayOffset = gramOffset + align(gramBytes);
            decayBytes = chunksTotal * shape.heads() * Float.BYTES;
            bytes = decayOffset + align(decayBytes);
        }
    }
}
