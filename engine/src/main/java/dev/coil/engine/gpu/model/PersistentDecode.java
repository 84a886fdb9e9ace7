package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A decode step of one sequence as one launch of {@code decode_persistent}
 * (decode_persistent.cu): the step's phases, in the order {@link GpuStep#run} launches them, as a
 * table on the device:
 * <pre>
 *   for each block:  x = rmsnorm(h + update · residualMultiplier)      (block 0: h = E[id] · multiplier)
 *     Mamba:      z|xBC|dt = in_proj(x), conv update   →  state update, y · silu(z)  →  update = out_proj(gated norm)
 *     Attention:  q|k|v = (q, k, v)_proj(x)  →  RoPE, K/V write, split attention  →  update = o_proj(merged)
 *     MLP:        hidden = silu(gate(x)) · up(x)   →   update = down(hidden)
 *   logits = lm_head(rmsnorm_final(h + update · residualMultiplier)), token = argmax(logits)
 * </pre>
 * One block per multiprocessor runs them with a grid barrier between phases, while a warp of each
 * block streams the coming products' weights into shared memory. Where the model or the step is
 * outside what the kernel takes ({@link #unsupported}, {@link #covers}), the step runs launch by launch.
 *
 * <p>Opt-in, {@code -Dcoil.cuda.persistentDecode=true}: its steps equal the launches' (PersistentDecodeTest)
 * but take about twice their device time on an H100 (docs/performance.md, with the per-phase trace
 * of {@link #TRACE_PROPERTY} that shows where).
 */
final class PersistentDecode implements AutoCloseable {

    static final String PROPERTY = "coil.cuda.persistentDecode";
    private static final Logger LOG = LoggerFactory.getLogger(PersistentDecode.class);
    /** Whether the kernel was asked for was logged: once a process. */
    private static final AtomicBoolean LOGGED = new AtomicBoolean();
    /** {@code -Dcoil.cuda.persistentTrace=true}: the kernel records when each phase starts and ends (diagnostics). */
    static final String TRACE_PROPERTY = "coil.cuda.persistentTrace";
    /** {@code -Dcoil.cuda.persistentFlags=N}: the grid barrier's fence and the ring's depth (the kernel's flags; comparisons). */
    static final String FLAGS_PROPERTY = "coil.cuda.persistentFlags";

    // decode_persistent.cu's constants and the fields of its phase table.
    private static final int THREADS = 288;
    private static final int SLOTS = 8;
    private static final int SLOT_BYTES = 22 * 1024;
    private static final int MAX_K = 2048;
    private static final int MAX_PARTITION = 4096;
    /** Positions of one split at most, leaving room in the scores buffer for the P·V sums. */
    private static final int MOST_SPLIT_POSITIONS = MAX_PARTITION - 512;
    private static final int MAX_CONV = 64;
    private static final int MAX_ITEMS = 512;
    private static final int MAX_HEAD_DIM = 128;
    private static final int MAX_NORM_GROUPS = 8;
    static final int DYNAMIC_BYTES = SLOTS * SLOT_BYTES + 2 * MAX_K + 4 * MAX_PARTITION;
    private static final int FIELDS = 48;

    private static final int GEMV = 1;
    private static final int SSM = 2;
    private static final int ATTENTION = 3;
    private static final int LM_HEAD = 4;

    private static final int EMBED = 0;
    private static final int RESIDUAL_NORM = 1;
    private static final int GATED_NORM = 2;
    private static final int BF16 = 3;
    private static final int MERGE = 4;

    private static final int F_KIND = 0;
    private static final int F_OPERAND = 1;
    private static final int F_A = 2;
    private static final int F_B = 3;
    private static final int F_MULTIPLIER = 4;
    private static final int F_H_OUT = 5;
    private static final int F_NORM_WEIGHT = 6;
    private static final int F_GROUP_SIZE = 7;
    private static final int F_EPS = 8;
    private static final int F_K = 9;
    private static final int F_SEGMENTS = 10;
    private static final int F_W0 = 11;
    private static final int F_SILU_PAIR = 20;
    private static final int F_CONV_WEIGHT = 21;
    private static final int F_CONV_BIAS = 22;
    private static final int F_CONV_STATES = 23;
    private static final int F_CONV_OUT = 24;
    private static final int F_CONV_KERNEL = 25;
    private static final int F_CONV_FIRST = 26;
    private static final int F_CONV_CHANNELS = 27;
    private static final int F_TOKENS = 29;
    private static final int F_ARGMAX = 30;
    private static final int F_MERGE_QUERY_HEADS = 32;
    private static final int F_MERGE_HEAD_DIM = 33;
    private static final int F_VOCAB = 34;
    private static final int F_STEP_SLOTS = 35;
    private static final int F_STEP_LENGTHS = 36;
    private static final int F_STEP_POSITIONS = 37;
    private static final int F_STEP_CACHE_ROWS = 38;

    private static final int F_SSM_X = 2;
    private static final int F_SSM_B = 3;
    private static final int F_SSM_C = 4;
    private static final int F_SSM_DT = 5;
    private static final int F_SSM_DT_BIAS = 6;
    private static final int F_SSM_A = 7;
    private static final int F_SSM_D = 8;
    private static final int F_SSM_STATES = 9;
    private static final int F_SSM_Y = 11;
    private static final int F_SSM_Z = 12;
    private static final int F_SSM_HEADS = 13;
    private static final int F_SSM_HEAD_DIM = 14;
    private static final int F_SSM_GROUPS = 15;
    private static final int F_SSM_STATE = 16;

    private static final int F_AT_Q = 2;
    private static final int F_AT_K = 3;
    private static final int F_AT_V = 4;
    private static final int F_AT_KEYS = 5;
    private static final int F_AT_VALUES = 6;
    private static final int F_AT_BF16 = 7;
    private static final int F_AT_QUERY_HEADS = 8;
    private static final int F_AT_KV_HEADS = 9;
    private static final int F_AT_HEAD_DIM = 10;
    private static final int F_AT_PADDED = 11;
    private static final int F_AT_ROTARY = 12;
    private static final int F_AT_THETA = 13;
    private static final int F_AT_TABLE = 16;
    private static final int F_AT_BLOCK_SIZE = 18;
    private static final int F_AT_SCALE_LOG2 = 19;
    private static final int F_AT_PARTIAL_OUT = 20;
    private static final int F_AT_PARTIAL_STATS = 21;

    private static final double LOG2_E = 1.4426950408889634;

    private final ModelConfig config;
    private final GpuWeights weights;
    private final DeviceKernels kernels;
    private final DeviceStateStore store;
    private final Kernel kernel;
    private final int grid;
    /** The longest context the split attention takes (positions). */
    private final int longestContext;
    private final List<DeviceBuffer> owned = new ArrayList<>();
    private final DeviceBuffer h;
    private final DeviceBuffer spare;
    private final DeviceBuffer update;
    private final DeviceBuffer projected;
    private final DeviceBuffer convolved;
    private final DeviceBuffer y;
    private final DeviceBuffer hidden16;
    private final DeviceBuffer query;
    private final DeviceBuffer key;
    private final DeviceBuffer value;
    private final DeviceBuffer partialOut;
    private final DeviceBuffer partialStats;
    private final DeviceBuffer argmax;
    private final DeviceBuffer sync;
    private final DeviceBuffer trace;
    private final int flags = Integer.getInteger(FLAGS_PROPERTY, 0);
    /** The last built table's phases, named, for the trace report. */
    private List<String> phaseNames = List.of();
    /** The trace report as it stood when this closed (the buffer is gone then). */
    private String closedReport;
    /** Phase tables by the step buffers they point at: a captured graph's table is never rewritten. */
    private final Map<TableKey, Table> tables = new HashMap<>();

    private record TableKey(long inputs, long logits, long tokens) {
    }

    /** A phase table on the device and its number of phases. */
    private record Table(DeviceBuffer phases, int count) {
    }

    private PersistentDecode(ModelConfig config, GpuWeights weights, DeviceKernels kernels, DeviceStateStore store,
            Kernel kernel, int grid) {
        this.config = config;
        this.weights = weights;
        this.kernels = kernels;
        this.store = store;
        this.kernel = kernel;
        this.grid = grid;
        int hidden = config.hiddenSize();
        int width = 8;
        int channels = 8;
        int inner = 8;
        int ffn = 8;
        int queryWidth = 8;
        int kvWidth = 8;
        int partials = 8;
        int longest = Integer.MAX_VALUE;
        for (GpuWeights.Block block : weights.blocks) {
            switch (block.mixer()) {
                case GpuWeights.Mamba m -> {
                    width = Math.max(width, m.spec().projectionWidth());
                    channels = Math.max(channels, m.spec().convChannels());
                    inner = Math.max(inner, m.spec().innerSize());
                }
                case GpuWeights.Attention a -> {
                    BlockSpec.Attention spec = a.spec();
                    queryWidth = Math.max(queryWidth, spec.queryHeads() * spec.headDim());
                    kvWidth = Math.max(kvWidth, spec.kvHeads() * spec.headDim());
                    int splits = Math.max(1, grid / spec.queryHeads());
                    partials = Math.max(partials, spec.queryHeads() * splits * spec.headDim());
                    longest = (int) Math.min(longest, (long) MOST_SPLIT_POSITIONS * splits);
                }
                case GpuWeights.Mlp m -> ffn = Math.max(ffn, m.spec().intermediateSize());
            }
        }
        this.longestContext = longest;
        this.h = floats(hidden);
        this.spare = floats(hidden);
        this.update = floats(hidden);
        this.projected = floats(width);
        this.convolved = floats(channels);
        this.y = floats(inner);
        this.hidden16 = floats((ffn + 1) / 2 + 4);
        this.query = floats(queryWidth);
        this.key = floats(kvWidth);
        this.value = floats(kvWidth);
        this.partialOut = floats(partials);
        this.partialStats = floats(2L * partials);
        this.argmax = floats(3L * grid);
        this.sync = floats(2);
        sync.fillAsync(0, kernels.stream);
        this.trace = Boolean.getBoolean(TRACE_PROPERTY) ? floats(2L * 6 * 4096) : null;
        if (trace != null) {
            trace.fillAsync(0, kernels.stream);
        }
        kernels.stream.synchronize();
    }

    /**
     * The persistent decode for this model on this device, or null where it is off or does not
     * apply. When it was asked for, the outcome is logged once a process.
     */
    static PersistentDecode create(ModelConfig config, GpuWeights weights, DeviceKernels kernels,
            DeviceStateStore store) {
        if (!Boolean.getBoolean(PROPERTY)) {
            return null;
        }
        int grid = kernels.device.multiprocessors();
        String reason = unsupported(config, weights, kernels.device.computeCapability(), grid);
        Kernel kernel = null;
        if (reason == null) {
            kernel = kernels.device.kernels().kernel("decode_persistent");
            kernel.allowDynamicSharedBytes(DYNAMIC_BYTES);
            if (kernel.residentBlocks(THREADS, DYNAMIC_BYTES) < 1) {
                reason = "its block does not fit a multiprocessor";
            }
        }
        if (LOGGED.compareAndSet(false, true)) {
            if (reason == null) {
                LOG.info("decode steps of one sequence run as one persistent kernel on {}", kernels.device.description());
            } else {
                LOG.info("decode steps of one sequence run launch by launch: the persistent kernel does not take"
                        + " this model ({})", reason);
            }
        }
        return reason == null ? new PersistentDecode(config, weights, kernels, store, kernel, grid) : null;
    }

    /** Why the kernel cannot run this model, or null when it can. */
    static String unsupported(ModelConfig config, GpuWeights weights, int computeCapability, int grid) {
        if (computeCapability < 90) {
            return "it needs sm_90 (bulk copies into shared memory), not sm_" + computeCapability;
        }
        int hidden = config.hiddenSize();
        if (!(config.logitsDivisor() > 0f)) {
            return "the logits divisor is not positive";
        }
        if (!bf16(weights.embeddings) || !bf16(weights.lmHead)) {
            return "the embeddings and lm_head are not bf16";
        }
        String width = operandWidth("the hidden size", hidden);
        if (width != null) {
            return width;
        }
        for (GpuWeights.Block block : weights.blocks) {
            String reason = switch (block.mixer()) {
                case GpuWeights.Mamba m -> unsupported(m, grid);
                case GpuWeights.Attention a -> unsupported(a, grid);
                case GpuWeights.Mlp m -> unsupported(m);
            };
            if (reason != null) {
                return "block " + block.spec().layer() + ": " + reason;
            }
        }
        return null;
    }

    private static String unsupported(GpuWeights.Mamba m, int grid) {
        BlockSpec.Mamba spec = m.spec();
        if (!bf16(m.inProjection()) || !bf16(m.outProjection())) {
            return "Mamba projections are not bf16";
        }
        String width = operandWidth("the Mamba inner size", spec.innerSize());
        if (width != null) {
            return width;
        }
        if (spec.innerSize() % spec.normGroupSize() != 0 || spec.innerSize() / spec.normGroupSize() > MAX_NORM_GROUPS) {
            return "more than " + MAX_NORM_GROUPS + " gated-norm groups";
        }
        if (spec.stateSize() % 4 != 0 || spec.stateSize() > 256) {
            return "state size " + spec.stateSize() + " (a multiple of 4 up to 256 is taken)";
        }
        if (spec.convKernel() < 1 || spec.convKernel() > 5) {
            return "conv kernel " + spec.convKernel() + " (up to 5 is taken)";
        }
        if (spec.heads() % spec.groups() != 0) {
            return "heads not a multiple of groups";
        }
        if (Math.ceilDiv(spec.projectionWidth(), grid) + 1 > MAX_CONV) {
            return "in_proj too wide for the grid's conv staging";
        }
        return null;
    }

    private static String unsupported(GpuWeights.Attention a, int grid) {
        BlockSpec.Attention spec = a.spec();
        if (!bf16(a.query()) || !bf16(a.key()) || !bf16(a.value()) || !bf16(a.output())) {
            return "attention projections are not bf16";
        }
        if (spec.headDim() > MAX_HEAD_DIM || spec.queryHeads() % spec.kvHeads() != 0 || spec.queryHeads() > 64) {
            return "attention heads outside the kernel's (head dim up to " + MAX_HEAD_DIM + ", 64 query heads)";
        }
        if (spec.rotaryDim() % 2 != 0 || spec.rotaryDim() > spec.headDim()) {
            return "rotary dims " + spec.rotaryDim();
        }
        if (spec.queryHeads() * Math.max(1, grid / spec.queryHeads()) > MAX_ITEMS) {
            return "too many attention items for the merge";
        }
        return operandWidth("the attention width", spec.queryHeads() * spec.headDim());
    }

    private static String unsupported(GpuWeights.Mlp m) {
        if (m.experts() != null) {
            return "routed experts are not taken";
        }
        if (m.spec().kind() == BlockSpec.MlpKind.SQUARED_RELU) {
            return "squared-ReLU MLPs are not taken";
        }
        if (!bf16(m.down()) || (m.gateAndUp() != null ? !bf16(m.gateAndUp()) : !bf16(m.gate()) || !bf16(m.up()))) {
            return "MLP projections are not bf16";
        }
        return operandWidth("the MLP width", m.spec().intermediateSize());
    }

    private static String operandWidth(String what, int width) {
        return width % 8 == 0 && width <= MAX_K ? null
                : what + " " + width + " (a multiple of 8 up to " + MAX_K + " is taken)";
    }

    private static boolean bf16(DeviceMatrix matrix) {
        return matrix != null && matrix.dtype() == DType.BF16;
    }

    /** True when {@code layout} is a step this kernel runs: one decode, its context within the split attention's reach. */
    boolean covers(StepLayout layout) {
        return layout.decodesOnly() && layout.rows == 1
                && (long) layout.tableStride * store.blockSize() <= longestContext;
    }

    /** Phase tables uploaded so far: a captured graph is valid while this and the scratch stay unchanged. */
    long allocations() {
        return tables.size();
    }

    /**
     * Queues the step: the logits in "model.logits" and the greedy token in "model.tokens", as
     * {@link GpuStep}'s launches leave them.
     */
    void run(StepLayout layout, DeviceBuffer inputs) {
        DeviceBuffer logits = kernels.scratch.floats("model.logits", config.vocabSize());
        DeviceBuffer tokens = kernels.scratch.floats("model.tokens", 1);
        TableKey key = new TableKey(inputs.address(), logits.address(), tokens.address());
        Table table = tables.get(key);
        if (table == null) {
            long[] fields = table(layout, inputs, logits, tokens);
            DeviceBuffer phases = kernels.device.allocate(8L * fields.length);
            owned.add(phases);
            phases.copyFrom(MemorySegment.ofArray(fields).toArray(ValueLayout.JAVA_BYTE));
            table = new Table(phases, fields.length / FIELDS);
            tables.put(key, table);
        }
        kernel.launch(kernels.stream, grid, 1, 1, THREADS, DYNAMIC_BYTES, table.phases(), table.count(), sync, trace,
                flags);
    }

    /** The phase table of a one-row decode step whose inputs lie in {@code inputs} as {@code layout} packs them. */
    private long[] table(StepLayout layout, DeviceBuffer inputs, DeviceBuffer logits, DeviceBuffer tokens) {
        List<long[]> phases = new ArrayList<>();
        long ids = inputs.floatSlice(layout.idsOffset(), 1).address();
        long positions = inputs.floatSlice(layout.positionsOffset(), 1).address();
        long cacheRows = inputs.floatSlice(layout.cacheRowsOffset(), 1).address();
        long slots = inputs.floatSlice(layout.decodeSlotsOffset(), 1).address();
        long lengths = inputs.floatSlice(layout.decodeLengthsOffset(), 1).address();
        long blockTable = inputs.floatSlice(layout.decodeTablesOffset(), 1).address();
        int hidden = config.hiddenSize();
        long residual = h.address();
        long other = spare.address();
        for (int b = 0; b < weights.blocks.size(); b++) {
            GpuWeights.Block block = weights.blocks.get(b);
            long[] operand;
            if (b == 0) {
                operand = normed(EMBED, weights.embeddings.data().address(), ids, config.embeddingMultiplier(),
                        residual, block.norm().address(), hidden, hidden, config.normEps());
                operand[F_VOCAB] = config.vocabSize();
                operand[F_STEP_SLOTS] = slots;
                operand[F_STEP_LENGTHS] = lengths;
                operand[F_STEP_POSITIONS] = positions;
                operand[F_STEP_CACHE_ROWS] = cacheRows;
            } else {
                operand = normed(RESIDUAL_NORM, residual, update.address(), config.residualMultiplier(), other,
                        block.norm().address(), hidden, hidden, config.normEps());
                long previous = residual;
                residual = other;
                other = previous;
            }
            switch (block.mixer()) {
                case GpuWeights.Mamba m -> mamba(phases, operand, m, b);
                case GpuWeights.Attention a -> attention(phases, operand, a, b, blockTable);
                case GpuWeights.Mlp m -> mlp(phases, operand, m);
            }
        }
        long[] head = normed(RESIDUAL_NORM, residual, update.address(), config.residualMultiplier(), 0,
                weights.finalNorm.address(), hidden, hidden, config.normEps());
        head[F_KIND] = LM_HEAD;
        segments(head, weights.lmHead, logits.address());
        head[F_TOKENS] = tokens.address();
        head[F_ARGMAX] = argmax.address();
        phases.add(head);
        long[] fields = new long[phases.size() * FIELDS];
        List<String> names = new ArrayList<>();
        for (int p = 0; p < phases.size(); p++) {
            System.arraycopy(phases.get(p), 0, fields, p * FIELDS, FIELDS);
            names.add(name(phases.get(p)));
        }
        phaseNames = names;
        return fields;
    }

    private void mamba(List<long[]> phases, long[] inProjection, GpuWeights.Mamba m, int block) {
        BlockSpec.Mamba spec = m.spec();
        int inner = spec.innerSize();
        int groupWidth = spec.groups() * spec.stateSize();
        segments(inProjection, m.inProjection(), projected.address());
        inProjection[F_CONV_WEIGHT] = m.convWeight().address();
        inProjection[F_CONV_BIAS] = m.convBias() == null ? 0 : m.convBias().address();
        inProjection[F_CONV_STATES] = store.convStates(block).address();
        inProjection[F_CONV_OUT] = convolved.address();
        inProjection[F_CONV_KERNEL] = spec.convKernel();
        inProjection[F_CONV_FIRST] = inner;
        inProjection[F_CONV_CHANNELS] = spec.convChannels();
        phases.add(inProjection);

        long[] update = new long[FIELDS];
        update[F_KIND] = SSM;
        update[F_SSM_X] = convolved.address();
        update[F_SSM_B] = convolved.address() + 4L * inner;
        update[F_SSM_C] = convolved.address() + 4L * (inner + groupWidth);
        update[F_SSM_DT] = projected.address() + 4L * spec.dtColumn();
        update[F_SSM_DT_BIAS] = m.dtBias().address();
        update[F_SSM_A] = m.decay().address();
        update[F_SSM_D] = m.skip().address();
        update[F_SSM_STATES] = store.ssmStates(block).address();
        update[F_SSM_Y] = y.address();
        update[F_SSM_Z] = projected.address();
        update[F_SSM_HEADS] = spec.heads();
        update[F_SSM_HEAD_DIM] = spec.headDim();
        update[F_SSM_GROUPS] = spec.groups();
        update[F_SSM_STATE] = spec.stateSize();
        phases.add(update);

        long[] out = normed(GATED_NORM, y.address(), 0, 1f, 0, m.norm().address(), inner, spec.normGroupSize(),
                spec.normEps());
        segments(out, m.outProjection(), this.update.address());
        phases.add(out);
    }

    private void attention(List<long[]> phases, long[] projections, GpuWeights.Attention a, int block,
            long blockTable) {
        BlockSpec.Attention spec = a.spec();
        PagedAttentionCache cache = new PagedAttentionCache(store, block);
        segments(projections, a.query(), query.address(), a.key(), key.address(), a.value(), value.address());
        phases.add(projections);

        long[] attend = new long[FIELDS];
        attend[F_KIND] = ATTENTION;
        attend[F_AT_Q] = query.address();
        attend[F_AT_K] = key.address();
        attend[F_AT_V] = value.address();
        attend[F_AT_KEYS] = cache.keys;
        attend[F_AT_VALUES] = cache.values;
        attend[F_AT_BF16] = cache.bf16 ? 1 : 0;
        attend[F_AT_QUERY_HEADS] = spec.queryHeads();
        attend[F_AT_KV_HEADS] = spec.kvHeads();
        attend[F_AT_HEAD_DIM] = spec.headDim();
        attend[F_AT_PADDED] = cache.paddedHeadDim;
        attend[F_AT_ROTARY] = Math.max(0, spec.rotaryDim());
        attend[F_AT_THETA] = Float.floatToRawIntBits(spec.ropeTheta());
        attend[F_AT_TABLE] = blockTable;
        attend[F_AT_BLOCK_SIZE] = cache.blockSize;
        attend[F_AT_SCALE_LOG2] = Float.floatToRawIntBits((float) (spec.scale() * LOG2_E));
        attend[F_AT_PARTIAL_OUT] = partialOut.address();
        attend[F_AT_PARTIAL_STATS] = partialStats.address();
        phases.add(attend);

        int width = spec.queryHeads() * spec.headDim();
        long[] out = new long[FIELDS];
        out[F_KIND] = GEMV;
        out[F_OPERAND] = MERGE;
        out[F_A] = partialOut.address();
        out[F_B] = partialStats.address();
        out[F_K] = width;
        out[F_MERGE_QUERY_HEADS] = spec.queryHeads();
        out[F_MERGE_HEAD_DIM] = spec.headDim();
        segments(out, a.output(), update.address());
        phases.add(out);
    }

    private void mlp(List<long[]> phases, long[] gateAndUp, GpuWeights.Mlp m) {
        int width = m.spec().intermediateSize();
        int hiddenSize = config.hiddenSize();
        gateAndUp[F_SEGMENTS] = 2;
        if (m.gateAndUp() != null) {
            DeviceBuffer stacked = m.gateAndUp().data();
            gateAndUp[F_W0] = stacked.address();
            gateAndUp[F_W0 + 3] = stacked.address() + 2L * width * hiddenSize;
        } else {
            gateAndUp[F_W0] = m.gate().data().address();
            gateAndUp[F_W0 + 3] = m.up().data().address();
        }
        gateAndUp[F_W0 + 1] = hidden16.address();
        gateAndUp[F_SILU_PAIR] = width;
        phases.add(gateAndUp);

        long[] down = new long[FIELDS];
        down[F_KIND] = GEMV;
        down[F_OPERAND] = BF16;
        down[F_A] = hidden16.address();
        down[F_K] = width;
        segments(down, m.down(), update.address());
        phases.add(down);
    }

    private static String name(long[] phase) {
        return switch ((int) phase[F_KIND]) {
            case SSM -> "state update";
            case ATTENTION -> "attention";
            case LM_HEAD -> "lm_head";
            default -> phase[F_CONV_STATES] != 0 ? "in_proj"
                    : phase[F_SILU_PAIR] != 0 ? "gate_up"
                    : switch ((int) phase[F_OPERAND]) {
                        case GATED_NORM -> "out_proj";
                        case BF16 -> "down";
                        case MERGE -> "o_proj";
                        default -> phase[F_SEGMENTS] == 3 ? "q_k_v" : "product";
                    };
        };
    }

    /**
     * With {@link #TRACE_PROPERTY}: the last step's phases, µs medians by phase name: from the last
     * block's end of the phase before to block 0 passing the barrier, block 0's operand and whole
     * phase, the last block's end, and how long before the barrier block 0's weights were asked for.
     */
    String traceReport() {
        if (trace == null || closedReport != null) {
            return closedReport;
        }
        kernels.device.makeCurrent();
        kernels.stream.synchronize();
        int count = phaseNames.size();
        byte[] bytes = new byte[(int) trace.bytes()];
        trace.copyTo(bytes);
        long[] times = new long[6 * count];
        java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(times);
        Map<String, List<double[]>> byName = new java.util.LinkedHashMap<>();
        for (int p = 0; p < count; p++) {
            double barrier = p == 0 ? 0 : (times[6 * p + 1] - times[6 * (p - 1) + 4]) / 1e3;
            double operand = times[6 * p + 2] == 0 ? 0 : (times[6 * p + 2] - times[6 * p + 1]) / 1e3;
            double own = (times[6 * p + 3] - times[6 * p + 1]) / 1e3;
            double last = (times[6 * p + 4] - times[6 * p + 1]) / 1e3;
            double lead = times[6 * p + 5] == 0 ? 0 : (times[6 * p + 1] - times[6 * p + 5]) / 1e3;
            byName.computeIfAbsent(phaseNames.get(p), name -> new ArrayList<>())
                    .add(new double[] {barrier, operand, own, last, lead});
        }
        StringBuilder report = new StringBuilder(String.format("persistent step %.1f µs over %d phases;",
                (times[6 * (count - 1) + 4] - times[0]) / 1e3, count));
        byName.forEach((name, rows) -> {
            report.append(String.format(" %s ×%d: barrier %.2f, operand %.2f, block 0 %.2f, last block %.2f,"
                    + " weights asked %.2f before;", name, rows.size(), median(rows, 0), median(rows, 1),
                    median(rows, 2), median(rows, 3), median(rows, 4)));
        });
        return report.toString();
    }

    private static double median(List<double[]> rows, int column) {
        double[] values = rows.stream().mapToDouble(row -> row[column]).sorted().toArray();
        return values[values.length / 2];
    }

    /** A GEMV phase over a normed operand (EMBED, RESIDUAL_NORM or GATED_NORM). */
    private static long[] normed(int operand, long a, long b, float multiplier, long hOut, long normWeight, int k,
            int groupSize, float eps) {
        long[] phase = new long[FIELDS];
        phase[F_KIND] = GEMV;
        phase[F_OPERAND] = operand;
        phase[F_A] = a;
        phase[F_B] = b;
        phase[F_MULTIPLIER] = Float.floatToRawIntBits(multiplier);
        phase[F_H_OUT] = hOut;
        phase[F_NORM_WEIGHT] = normWeight;
        phase[F_GROUP_SIZE] = groupSize;
        phase[F_EPS] = Float.floatToRawIntBits(eps);
        phase[F_K] = k;
        return phase;
    }

    /** The phase's (weights, out, columns) segments: pairs of a matrix and its output's address. */
    private static void segments(long[] phase, Object... matricesAndOutputs) {
        int segments = matricesAndOutputs.length / 2;
        phase[F_SEGMENTS] = segments;
        for (int s = 0; s < segments; s++) {
            DeviceMatrix matrix = (DeviceMatrix) matricesAndOutputs[2 * s];
            if (matrix.cols() != phase[F_K]) {
                throw new IllegalStateException("a product of width " + matrix.cols() + " over an operand of "
                        + phase[F_K]);
            }
            phase[F_W0 + 3 * s] = matrix.data().address();
            phase[F_W0 + 3 * s + 1] = (Long) matricesAndOutputs[2 * s + 1];
            phase[F_W0 + 3 * s + 2] = matrix.rows();
        }
    }

    /** A block's paged cache as the kernel reads it. */
    private record PagedAttentionCache(long keys, long values, boolean bf16, int paddedHeadDim, int blockSize) {
        PagedAttentionCache(DeviceStateStore store, int block) {
            this(store.cache(block).keys().address(), store.cache(block).values().address(),
                    store.cache(block).dtype() == DType.BF16, store.cache(block).headDim(),
                    store.cache(block).blockSize());
        }
    }

    private DeviceBuffer floats(long count) {
        DeviceBuffer buffer = kernels.device.allocateFloats(Math.max(count, 4));
        owned.add(buffer);
        return buffer;
    }

    @Override
    public void close() {
        if (trace != null && closedReport == null && !phaseNames.isEmpty()) {
            closedReport = traceReport();
        }
        for (DeviceBuffer buffer : owned) {
            buffer.close();
        }
        owned.clear();
        tables.clear();
    }
}
