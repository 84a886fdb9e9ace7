package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/**
 * Launches the {@code routed_experts_*} kernels (routed_experts.cu): a mixture-of-experts block's
 * routed experts (GraniteMoeHybrid's block_sparse_moe, NemotronH's moe) over only the experts each
 * token takes. A step runs {@link #route} on the router's logits ({@link RoutedExpertsRouter}: softmax,
 * or sigmoid with groups), {@link #gateUp} over the chosen experts' input rows
 * ({@link ExpertActivation}: stacked gate and up rows, or up rows alone), then {@link #downAdd}, which
 * adds each token's weighted sum of its experts' down products to the residual stream. The ids and
 * weights stay on the device and every launch's shape follows from its arguments, so a step of them
 * can be captured into a graph.
 *
 * <p>{@link #add} makes the whole block's output after {@link #route}: for few (row, slot) pairs by
 * gateUp and downAdd, which read each pair's expert weights once per pair; for more by the grouped
 * path, which sorts the pairs by expert on the device and multiplies tiles of up to 64 pairs of one
 * expert (16 on the tensor cores while an expert's pairs are few: {@link #tilePairs}), reading the
 * expert's weights once a tile (on tensor cores for BF16 weights). {@link #addRouted} starts from the
 * router's scores: for few pairs it routes inside the gate/up launch ({@link #routeGateUp}), two
 * launches in all; for more it runs {@link #route} and then the grouped path. With BF16 weights those
 * two launches are {@link RoutedExpertsWalk}'s where its kernels take the shape: one wave of blocks,
 * each routing its row once and walking many outputs (the same outputs bit for bit).
 *
 * <p>Every kernel here waits for the kernel before it on the device before reading its inputs
 * (routed_experts.cu), so each is launched with programmatic stream serialization where the device
 * has it ({@link Kernel#waitsForPreviousKernel}; {@code -Dcoil.cuda.programmaticLaunch=false} gives
 * plain launches): its start overlaps the end of the kernel before.
 *
 * <p>Notation: rows = tokens of the step, E experts, k experts a token ({@code perToken}; 1 ≤ k ≤
 * E, k ≤ {@link #MAX_PER_TOKEN}), H the hidden size, F an expert's width.
 */
public final class RoutedExpertsKernel {

    /** The most experts the router takes (a block's thread an expert). */
    public static final int MAX_EXPERTS = 256;

    /** ROUTED_EXPERTS_MAX_GROUPS: the most groups a sigmoid router splits its experts into. */
    public static final int MAX_GROUPS = 32;

    /** The most experts a token takes. */
    public static final int MAX_PER_TOKEN = 16;

    /** ROUTED_EXPERTS_WARPS: a block's warps (the routing: a block a row; the products: a warp an output). */
    private static final int WARPS = 8;
    private static final int THREADS = 32 * WARPS;
    /** CUDA's limit on a grid's y dimension; the products stride over what lies beyond it. */
    private static final int MAX_GRID_Y = 65535;
    /** The routing's blocks at most (a block a row, striding beyond). */
    private static final int MAX_ROUTE_BLOCKS = 65535;

    /**
     * The most (row, slot) pairs {@link #add} gives the per-pair kernels; more take the grouped path.
     * The per-pair path reads 3·F·H weights a pair; the grouped path reads each expert the pairs
     * touch once a tile, but adds three launches, a bf16 copy of x and 64-pair tiles that few pairs
     * leave mostly empty. While the pairs are few they touch nearly as many experts as there are
     * pairs (48 random pairs of 64 experts touch 34 on average), so reading per pair costs few more
     * bytes and saves the launches. Measured on an H200 with granite-4.0-h-tiny's shapes (H 1536,
     * F 512, E 64, k 6, BF16), per pair against grouped: 48 pairs 83 µs against 104, 66 pairs 108
     * against 110, 96 pairs 153 against 126, 192 pairs 286 against 137.
     */
    public static final int PER_PAIR_MAX_PAIRS = 64;

    /** ROUTED_EXPERTS_TILE_PAIRS: the grouped path's pairs a tile (CUDA cores, and tensor cores for many pairs). */
    static final int TILE_PAIRS = 64;
    /** ROUTED_EXPERTS_SMALL_TILE_PAIRS: the tensor-core tile's pairs where each expert has few ({@link #tilePairs}). */
    static final int SMALL_TILE_PAIRS = 16;
    /**
     * The most pairs an expert on average, rows · k / E, for which {@link #tilePairs} takes the small
     * tile. Reasoned from bytes and tiles, not measured (no GPU where this was written): every tile
     * reads its expert's slice of weights once, so the small tile reads an expert once more for each
     * further 16 pairs it has; with uniform routing an expert's pairs are about Poisson(λ), λ = rows ·
     * k / E, and more than 16 of them come with probability 0.4% at λ = 8, 10% at 12 and 43% at 16:
     * up to λ = 8 the small tiles read within 1% of the large tiles' bytes. The large tile then holds
     * at most λ of its 64 pairs (8 × the useful mma work at λ = 8: ~19 GFLOP a layer at granite-4.0-
     * h-tiny's shapes, some 30 µs of mma.sync on an H200 beside the ~63 µs its 302 MB take to read),
     * and its 106 registers a thread leave 2 blocks a multiprocessor (64 KB of weights in flight)
     * where the small tile's ring leaves 3 (96 KB). Past λ = 16 most experts split and the small tile
     * reads ~1.4 × the bytes, which a memory-bound step pays in full; between 8 and 16 the balance is
     * a guess, so the rule stays at 8, the safe side: real routers are skewed, and a hot expert with
     * several times the mean splits even where the mean is low. Granite-4.0-h-tiny (k 6, E 64) takes
     * the small tile up to 85 rows (decode batches), the large one for prompt chunks.
     */
    static final int SMALL_TILE_MOST_PAIRS_PER_EXPERT = 8;
    /**
     * The tensor-core tiles' rings of staged operand and weight rows, dynamic shared memory: (pairs + 128
     * weight rows) × (K staged + 8) bf16 × 3 stages, K 64: more than 48 KiB, so each is allowed its ring.
     */
    private static final int TILE_RING_BYTES = (TILE_PAIRS + 128) * (64 + 8) * 2 * 3;
    private static final int SMALL_TILE_RING_BYTES = (SMALL_TILE_PAIRS + 128) * (64 + 8) * 2 * 3;
    /** ROUTED_EXPERTS_GROUP_THREADS: the grouping block's threads. */
    private static final int GROUP_THREADS = 1024;
    /** Blocks that round x to bf16 beside the grouping block (grid-stride; enough to fill the GPU). */
    private static final int CONVERT_BLOCKS_MAX = 264;
    /** Outputs a tile block makes: tensor cores (BF16) 64 of gate/up, 128 of down; CUDA cores (F32) 32 and 64. */
    private static final int MMA_GATE_UP_OUTPUTS = 64;
    private static final int MMA_DOWN_OUTPUTS = 128;
    private static final int FMA_GATE_UP_OUTPUTS = 32;
    private static final int FMA_DOWN_OUTPUTS = 64;
    /** Workspace regions start 256 bytes apart from its start (16 is what the tile table and the staging's copies need). */
    private static final long ALIGNMENT = 256;

    private final Kernel route;
    private final Kernel gateUpBf16;
    private final Kernel gateUpF32;
    private final Kernel routeGateUpBf16;
    private final Kernel routeGateUpF32;
    private final Kernel downAddBf16;
    private final Kernel downAddF32;
    private final Kernel routeDownAddBf16;
    private final Kernel routeDownAddF32;
    private final Kernel group;
    private final Kernel tileGateUpBf16;
    private final Kernel tileUpBf16;
    private final Kernel smallTileUpBf16;
    private final Kernel tileUpF32;
    private final Kernel tileDownBf16;
    private final Kernel smallTileGateUpBf16;
    private final Kernel smallTileDownBf16;
    private final Kernel tileGateUpF32;
    private final Kernel tileDownF32;
    private final Kernel combine;
    private final RoutedExpertsWalk walk;

    public RoutedExpertsKernel(KernelModule module) {
        // All of them pass coil_grid_dependency_wait before reading what earlier kernels wrote.
        this.route = module.kernel("routed_experts_route").waitsForPreviousKernel();
        this.gateUpBf16 = module.kernel("routed_experts_gate_up_bf16").waitsForPreviousKernel();
        this.gateUpF32 = module.kernel("routed_experts_gate_up_f32").waitsForPreviousKernel();
        this.routeGateUpBf16 = module.kernel("routed_experts_route_gate_up_bf16").waitsForPreviousKernel();
        this.routeGateUpF32 = module.kernel("routed_experts_route_gate_up_f32").waitsForPreviousKernel();
        this.downAddBf16 = module.kernel("routed_experts_down_add_bf16").waitsForPreviousKernel();
        this.downAddF32 = module.kernel("routed_experts_down_add_f32").waitsForPreviousKernel();
        this.routeDownAddBf16 = module.kernel("routed_experts_route_down_add_bf16").waitsForPreviousKernel();
        this.routeDownAddF32 = module.kernel("routed_experts_route_down_add_f32").waitsForPreviousKernel();
        this.group = module.kernel("routed_experts_group").waitsForPreviousKernel();
        this.tileGateUpBf16 = module.kernel("routed_experts_tile_gate_up_bf16").waitsForPreviousKernel();
        this.tileUpBf16 = module.kernel("routed_experts_tile_up_bf16").waitsForPreviousKernel();
        this.smallTileUpBf16 = module.kernel("routed_experts_small_tile_up_bf16").waitsForPreviousKernel();
        this.tileUpF32 = module.kernel("routed_experts_tile_up_f32").waitsForPreviousKernel();
        this.tileDownBf16 = module.kernel("routed_experts_tile_down_bf16").waitsForPreviousKernel();
        this.smallTileGateUpBf16 = module.kernel("routed_experts_small_tile_gate_up_bf16").waitsForPreviousKernel();
        this.smallTileDownBf16 = module.kernel("routed_experts_small_tile_down_bf16").waitsForPreviousKernel();
        this.tileGateUpF32 = module.kernel("routed_experts_tile_gate_up_f32").waitsForPreviousKernel();
        this.tileDownF32 = module.kernel("routed_experts_tile_down_f32").waitsForPreviousKernel();
        this.combine = module.kernel("routed_experts_combine").waitsForPreviousKernel();
        this.walk = new RoutedExpertsWalk(module, routeGateUpBf16);
        for (Kernel small : new Kernel[] {smallTileGateUpBf16, smallTileUpBf16, smallTileDownBf16}) {
            small.allowDynamicSharedBytes(SMALL_TILE_RING_BYTES);
        }
        for (Kernel large : new Kernel[] {tileGateUpBf16, tileUpBf16, tileDownBf16}) {
            large.allowDynamicSharedBytes(TILE_RING_BYTES);
        }
    }

    /** {@link #route} with the softmax router (Granite). */
    public void route(CudaStream stream, DeviceBuffer logits, int rows, int experts, int perToken, DeviceBuffer ids,
            DeviceBuffer weights) {
        route(stream, RoutedExpertsRouter.SOFTMAX, logits, rows, experts, perToken, ids, weights);
    }

    /**
     * Each row's k experts as {@code router} chooses them (softmax: the k best logits, a tie to the
     * lower expert id) and their weights in f32, stored ordered by expert id ascending.
     *
     * @param logits (rows, experts) f32, the router's scores; a NaN counts as -infinity
     * @param experts E, 1 to {@link #MAX_EXPERTS}
     * @param perToken k, 1 to min(E, {@link #MAX_PER_TOKEN})
     * @param ids out: (rows, k) int32, each row's experts ascending
     * @param weights out: (rows, k) f32, the weight of the expert at the same place of ids
     */
    public void route(CudaStream stream, RoutedExpertsRouter router, DeviceBuffer logits, int rows, int experts,
            int perToken, DeviceBuffer ids, DeviceBuffer weights) {
        RowKernels.requireNonNegative(rows, "rows");
        requireExperts(experts);
        requirePerToken(perToken, experts);
        router.require(experts, perToken);
        logits.requireFloats((long) rows * experts, "logits");
        ids.requireBytes(4L * rows * perToken, "ids");
        weights.requireFloats((long) rows * perToken, "weights");
        if (rows > 0) {
            // A block a row, striding over rows beyond the grid.
            route.launch(stream, Math.min(rows, MAX_ROUTE_BLOCKS), 1, 1, THREADS, 0, logits, rows, experts, perToken,
                    router.scoring(), router.biasAddress(), router.groups(), router.groupsChosen(), router.scale(), ids,
                    weights);
        }
    }

    /** {@link #gateUp} of gated experts (Granite's stacked gate and up rows). */
    public void gateUp(CudaStream stream, DeviceBuffer x, int rows, int hidden, DeviceMatrix gateAndUp, int width,
            DeviceBuffer ids, int perToken, DeviceBuffer out) {
        gateUp(stream, x, rows, hidden, gateAndUp, ExpertActivation.SILU_GATED, width, ids, perToken, out);
    }

    /**
     * out[r, s, j] = expert e = ids[r, s]'s input product on x[r], in f32: SILU_GATED silu(g) · u, g = Σ_c
     * x[r, c] · W[e·2F + j, c] and u = Σ_c x[r, c] · W[e·2F + F + j, c]; SQUARED_RELU relu(u)², u = Σ_c
     * x[r, c] · W[e·F + j, c]. An id outside [0, E) gives NaN outputs.
     *
     * @param x (rows, hidden) f32, the block's normed input
     * @param hidden H, x's width and the weights' columns
     * @param input (E · R, H) BF16 or F32, R = {@link ExpertActivation#inputRows}: expert e's rows from e · R
     *     (SILU_GATED: its F gate rows then its F up rows)
     * @param width F
     * @param ids (rows, k) int32, {@link #route}'s output
     * @param perToken k
     * @param out (rows, k, F) f32, the down product's input
     */
    public void gateUp(CudaStream stream, DeviceBuffer x, int rows, int hidden, DeviceMatrix input,
            ExpertActivation activation, int width, DeviceBuffer ids, int perToken, DeviceBuffer out) {
        RowKernels.requireNonNegative(rows, "rows");
        RowKernels.requirePositive(hidden, "hidden");
        RowKernels.requirePositive(width, "width");
        int experts = inputExperts(input, activation, width, hidden);
        requirePerToken(perToken, experts);
        long pairs = requirePairs(rows, perToken);
        x.requireFloats((long) rows * hidden, "x");
        ids.requireBytes(4 * pairs, "ids");
        out.requireFloats(pairs * width, "out");
        if (rows > 0) {
            // x over the outputs j (a warp each), y over the (row, slot) pairs, strided past 65535.
            Kernel kernel = input.dtype() == DType.BF16 ? gateUpBf16 : gateUpF32;
            kernel.launch(stream, Kernel.blocksFor(width, WARPS), (int) Math.min(pairs, MAX_GRID_Y), 1, THREADS, 0, x,
                    rows, hidden, input.data(), activation.gated(), experts, width, ids, perToken, out);
        }
    }

    /**
     * out[r, j] += Σ over s = 0 .. k-1 in order of weights[r, s] · (Σ_c hiddenValues[r, s, c] · W[ids[r, s]·H + j, c]),
     * the sum in f32 on its own and added to out once. An id outside [0, E) makes the row's outputs NaN.
     *
     * @param hiddenValues (rows, k, F) f32, {@link #gateUp}'s output
     * @param perToken k
     * @param width F, hiddenValues' last dimension and the weights' columns
     * @param down (E · H, F) BF16 or F32: expert e's rows from e · H
     * @param hiddenSize H
     * @param ids (rows, k) int32, {@link #route}'s ids
     * @param weights (rows, k) f32, {@link #route}'s weights
     * @param out (rows, H) f32, read and written: the residual stream
     */
    public void downAdd(CudaStream stream, DeviceBuffer hiddenValues, int rows, int perToken, int width,
            DeviceMatrix down, int hiddenSize, DeviceBuffer ids, DeviceBuffer weights, DeviceBuffer out) {
        RowKernels.requireNonNegative(rows, "rows");
        RowKernels.requirePositive(width, "width");
        RowKernels.requirePositive(hiddenSize, "hiddenSize");
        int experts = expertsOf(down, "down", hiddenSize, width, "hiddenSize (" + hiddenSize + ")", "width");
        requirePerToken(perToken, experts);
        long pairs = requirePairs(rows, perToken);
        hiddenValues.requireFloats(pairs * width, "hiddenValues");
        ids.requireBytes(4 * pairs, "ids");
        weights.requireFloats(pairs, "weights");
        out.requireFloats((long) rows * hiddenSize, "out");
        if (rows > 0) {
            // x over the outputs j (a warp each), y over the rows, strided past 65535.
            Kernel kernel = down.dtype() == DType.BF16 ? downAddBf16 : downAddF32;
            kernel.launch(stream, Kernel.blocksFor(hiddenSize, WARPS), Math.min(rows, MAX_GRID_Y), 1, THREADS, 0,
                    hiddenValues, rows, perToken, width, down.data(), experts, hiddenSize, ids, weights, out);
        }
    }

    /** {@link #routeGateUp} of Granite's experts: the softmax router, gated experts. */
    public void routeGateUp(CudaStream stream, DeviceBuffer logits, int experts, int perToken, DeviceBuffer x,
            int rows, int hidden, DeviceMatrix gateAndUp, int width, DeviceBuffer ids, DeviceBuffer weights,
            DeviceBuffer out) {
        routeGateUp(stream, RoutedExpertsRouter.SOFTMAX, logits, experts, perToken, x, rows, hidden, gateAndUp,
                ExpertActivation.SILU_GATED, width, ids, weights, out);
    }

    /**
     * {@link #route} then {@link #gateUp} in one launch: each block routes its pairs' rows itself from
     * the scores, and the ids and weights are stored for {@link #downAdd}. ids and weights are
     * route's bit for bit (the same order, ties and f32 arithmetic), out is gateUp's on them bit for
     * bit.
     *
     * @param router how the experts are chosen and weighed
     * @param logits (rows, experts) f32, the router's scores; a NaN counts as -infinity
     * @param experts E, 1 to {@link #MAX_EXPERTS}; input must hold E experts
     * @param perToken k, 1 to min(E, {@link #MAX_PER_TOKEN})
     * @param x (rows, hidden) f32, the block's normed input
     * @param input (E · R, H) BF16 or F32, as {@link #gateUp} takes it
     * @param width F
     * @param ids out: (rows, k) int32, each row's experts ascending
     * @param weights out: (rows, k) f32, the weight of the expert at the same place of ids
     * @param out (rows, k, F) f32, the down product's input
     */
    public void routeGateUp(CudaStream stream, RoutedExpertsRouter router, DeviceBuffer logits, int experts,
            int perToken, DeviceBuffer x, int rows, int hidden, DeviceMatrix input, ExpertActivation activation,
            int width, DeviceBuffer ids, DeviceBuffer weights, DeviceBuffer out) {
        RowKernels.requireNonNegative(rows, "rows");
        RowKernels.requirePositive(hidden, "hidden");
        RowKernels.requirePositive(width, "width");
        requireExperts(experts);
        int held = inputExperts(input, activation, width, hidden);
        if (held != experts) {
            throw new IllegalArgumentException("the input matrix holds " + held + " experts; the scores " + experts);
        }
        requirePerToken(perToken, experts);
        router.require(experts, perToken);
        long pairs = requirePairs(rows, perToken);
        logits.requireFloats((long) rows * experts, "logits");
        x.requireFloats((long) rows * hidden, "x");
        ids.requireBytes(4 * pairs, "ids");
        weights.requireFloats(pairs, "weights");
        out.requireFloats(pairs * width, "out");
        if (rows > 0 && !walk.routeGateUp(stream, router, logits, experts, perToken, x, rows, hidden, input,
                activation, width, ids, weights, out)) {
            // gateUp's grid: x over the outputs j (a warp each), y over the (row, slot) pairs, strided past 65535.
            Kernel kernel = input.dtype() == DType.BF16 ? routeGateUpBf16 : routeGateUpF32;
            kernel.launch(stream, Kernel.blocksFor(width, WARPS), (int) Math.min(pairs, MAX_GRID_Y), 1, THREADS, 0,
                    logits, experts, perToken, router.scoring(), router.biasAddress(), router.groups(),
                    router.groupsChosen(), router.scale(), x, rows, hidden, input.data(), activation.gated(), width,
                    ids, weights, out);
        }
    }

    /**
     * Bytes of device workspace {@link #add} and {@link #addRouted} need for up to {@code rows} rows
     * (the need grows with the rows, so a workspace sized for the most rows serves every call).
     *
     * @param rows the most rows of a call
     * @param perToken k, 1 to min(E, {@link #MAX_PER_TOKEN})
     * @param experts E, 1 to {@link #MAX_EXPERTS}
     * @param width F
     * @param hidden H
     */
    public static long workspaceBytes(int rows, int perToken, int experts, int width, int hidden) {
        RowKernels.requireNonNegative(rows, "rows");
        requireExperts(experts);
        requirePerToken(perToken, experts);
        RowKernels.requirePositive(width, "width");
        RowKernels.requirePositive(hidden, "hidden");
        long pairs = requirePairs(rows, perToken);
        return Workspace.of(rows, pairs, experts, width, hidden, pairs > PER_PAIR_MAX_PAIRS).bytes();
    }

    /** The workspace of the grouped path for {@code rows} rows whatever their pairs ({@link #addRoutedGrouped}). */
    public static long groupedWorkspaceBytes(int rows, int perToken, int experts, int width, int hidden) {
        return Workspace.of(rows, requirePairs(rows, perToken), experts, width, hidden, true).bytes();
    }

    /**
     * The grouped path's pairs a tile on the tensor cores for a call of {@code rows} rows: {@link
     * #SMALL_TILE_PAIRS} while rows · k ≤ {@link #SMALL_TILE_MOST_PAIRS_PER_EXPERT} · E (few pairs an
     * expert: decode batches), else {@link #TILE_PAIRS}. It depends on (rows, k, E) alone, so a graph
     * captured for a number of rows keeps its launches. The CUDA-core tiles (F32 weights) are always
     * of {@link #TILE_PAIRS}.
     */
    static int tilePairs(int rows, int perToken, int experts) {
        return (long) rows * perToken <= (long) SMALL_TILE_MOST_PAIRS_PER_EXPERT * experts ? SMALL_TILE_PAIRS
                : TILE_PAIRS;
    }

    /** {@link #add} of gated experts (Granite's stacked gate and up rows). */
    public void add(CudaStream stream, DeviceBuffer x, int rows, int hidden, DeviceMatrix gateAndUp, DeviceMatrix down,
            int width, DeviceBuffer ids, DeviceBuffer weights, int perToken, DeviceBuffer workspace,
            DeviceBuffer out) {
        add(stream, x, rows, hidden, gateAndUp, ExpertActivation.SILU_GATED, down, width, ids, weights, perToken,
                workspace, out);
    }

    /**
     * out[r, :] += Σ over r's k slots, in slot order, of weights[r,s] · down_e(input_e(x[r])), input_e the
     * expert's input product ({@link #gateUp}), e = ids[r,s] ({@link #route}'s output): the block's output
     * added to the residual stream. Up to {@link #PER_PAIR_MAX_PAIRS} (row, slot) pairs by {@link #gateUp}
     * and {@link #downAdd}; more by the grouped path: the pairs sorted by expert on the device, tiles of up
     * to 64 pairs of one expert (16 on the tensor cores while an expert's pairs are few, {@link #tilePairs})
     * through the input and down products (tensor cores with x and the activations rounded to bf16 for BF16
     * weights, CUDA cores in f32 for F32), and each row's slots summed in slot order as downAdd sums them,
     * so the paths agree to rounding (the two tile sizes bit for bit). An id outside [0, E) makes the row's
     * outputs NaN. Graph-capturable: no host synchronisation, no allocation, launch shapes fixed by the
     * arguments.
     *
     * @param x (rows, hidden) f32, the block's normed input
     * @param hidden H
     * @param input (E · R, H) BF16 or F32, as {@link #gateUp} takes it
     * @param down (E · H, F) of the same dtype: expert e's rows from e · H
     * @param width F
     * @param ids (rows, k) int32, {@link #route}'s ids
     * @param weights (rows, k) f32, {@link #route}'s weights
     * @param perToken k
     * @param workspace at least {@link #workspaceBytes}(rows, k, E, F, H) bytes, 16-byte aligned
     * @param out (rows, H) f32, read and written: the residual stream
     */
    public void add(CudaStream stream, DeviceBuffer x, int rows, int hidden, DeviceMatrix input,
            ExpertActivation activation, DeviceMatrix down, int width, DeviceBuffer ids, DeviceBuffer weights,
            int perToken, DeviceBuffer workspace, DeviceBuffer out) {
        int experts = requireBlock(x, rows, hidden, input, activation, down, width, ids, weights, perToken, out);
        long pairs = (long) rows * perToken;
        Workspace layout = requireWorkspace(workspace, rows, pairs, experts, width, hidden,
                pairs > PER_PAIR_MAX_PAIRS);
        if (rows == 0) {
            return;
        }
        if (!layout.grouped()) {
            DeviceBuffer activated = workspace.slice(0, 4 * pairs * width);
            gateUp(stream, x, rows, hidden, input, activation, width, ids, perToken, activated);
            downAdd(stream, activated, rows, perToken, width, down, hidden, ids, weights, out);
            return;
        }
        grouped(stream, x, rows, hidden, input, activation, down, width, ids, weights, perToken, experts, layout,
                workspace.address(), input.dtype() == DType.BF16 ? tilePairs(rows, perToken, experts) : TILE_PAIRS,
                out);
    }

    /** {@link #addRouted} of Granite's experts: the softmax router, gated experts. */
    public void addRouted(CudaStream stream, DeviceBuffer scores, DeviceBuffer x, int rows, int hidden,
            DeviceMatrix gateAndUp, DeviceMatrix down, int width, int experts, int perToken, DeviceBuffer ids,
            DeviceBuffer weights, DeviceBuffer workspace, DeviceBuffer out) {
        addRouted(stream, RoutedExpertsRouter.SOFTMAX, scores, x, rows, hidden, gateAndUp,
                ExpertActivation.SILU_GATED, down, width, experts, perToken, ids, weights, workspace, out);
    }

    /**
     * The block's output from the router's scores: the routing and {@link #add}'s experts, ids and
     * weights stored on the way. Up to {@link #PER_PAIR_MAX_PAIRS} pairs (decode) two launches, {@link
     * #routeGateUp} and {@link #downAdd}'s products (their launch routing its rows again, so that it
     * can ask for its expert rows before its wait); more: {@link #route} then add's grouped path. The outputs, ids
     * and weights equal route followed by add bit for bit on both paths.
     *
     * @param router how the experts are chosen and weighed
     * @param scores (rows, experts) f32, the router's scores; a NaN counts as -infinity
     * @param x (rows, hidden) f32, the block's normed input
     * @param input (E · R, H) BF16 or F32, as {@link #gateUp} takes it
     * @param down (E · H, F) of the same dtype
     * @param width F
     * @param experts E, the weights' experts and the scores' columns
     * @param perToken k
     * @param ids out: (rows, k) int32, {@link #route}'s ids
     * @param weights out: (rows, k) f32, {@link #route}'s weights
     * @param workspace at least {@link #workspaceBytes}(rows, k, E, F, H) bytes, 16-byte aligned
     * @param out (rows, H) f32, read and written: the residual stream
     */
    public void addRouted(CudaStream stream, RoutedExpertsRouter router, DeviceBuffer scores, DeviceBuffer x,
            int rows, int hidden, DeviceMatrix input, ExpertActivation activation, DeviceMatrix down, int width,
            int experts, int perToken, DeviceBuffer ids, DeviceBuffer weights, DeviceBuffer workspace,
            DeviceBuffer out) {
        requireScores(router, scores, rows, experts, perToken,
                requireBlock(x, rows, hidden, input, activation, down, width, ids, weights, perToken, out));
        long pairs = (long) rows * perToken;
        Workspace layout = requireWorkspace(workspace, rows, pairs, experts, width, hidden,
                pairs > PER_PAIR_MAX_PAIRS);
        if (rows == 0) {
            return;
        }
        if (layout.grouped()) {
            // The routing on its own, then add's grouped path (which checks the block again).
            route(stream, router, scores, rows, experts, perToken, ids, weights);
            add(stream, x, rows, hidden, input, activation, down, width, ids, weights, perToken, workspace, out);
            return;
        }
        DeviceBuffer activated = workspace.slice(0, 4 * pairs * width);
        routeGateUp(stream, router, scores, experts, perToken, x, rows, hidden, input, activation, width, ids, weights,
                activated);
        // downAdd's work, each block routing its row again from the scores (the ids and weights just
        // stored, bit for bit) before its wait and asking L2 for its expert rows meanwhile. Only right
        // after routeGateUp: that launch lets it start once the scores' writer is done
        // (routed_experts.cu, routed_experts_route_down_add).
        if (walk.routeDownAdd(stream, router, scores, activated, rows, perToken, width, down, experts, hidden, out)) {
            return;
        }
        Kernel routeDownAdd = down.dtype() == DType.BF16 ? routeDownAddBf16 : routeDownAddF32;
        routeDownAdd.launch(stream, Kernel.blocksFor(hidden, WARPS), Math.min(rows, MAX_GRID_Y), 1, THREADS, 0,
                scores, router.scoring(), router.biasAddress(), router.groups(), router.groupsChosen(), router.scale(),
                activated, rows, perToken, width, down.data(), experts, hidden, out);
    }

    /**
     * {@link #addRouted}'s result for {@code --batch-invariant}: the routing, then the grouped path in
     * tiles of {@link #TILE_PAIRS} whatever the rows, so that a row's experts are summed the same way
     * whatever rows share the step (the per-pair launches of a decode step, and the smaller tiles of a
     * few pairs an expert, each sum in their own order). The workspace must hold {@link
     * #groupedWorkspaceBytes}.
     */
    public void addRoutedGrouped(CudaStream stream, RoutedExpertsRouter router, DeviceBuffer scores, DeviceBuffer x,
            int rows, int hidden, DeviceMatrix input, ExpertActivation activation, DeviceMatrix down, int width,
            int experts, int perToken, DeviceBuffer ids, DeviceBuffer weights, DeviceBuffer workspace,
            DeviceBuffer out) {
        requireScores(router, scores, rows, experts, perToken,
                requireBlock(x, rows, hidden, input, activation, down, width, ids, weights, perToken, out));
        // Every check before the routing's launch, so that a bad call launches nothing.
        Workspace layout = requireWorkspace(workspace, rows, (long) rows * perToken, experts, width, hidden, true);
        if (rows > 0) {
            route(stream, router, scores, rows, experts, perToken, ids, weights);
            grouped(stream, x, rows, hidden, input, activation, down, width, ids, weights, perToken, experts, layout,
                    workspace.address(), TILE_PAIRS, out);
        }
    }

    /**
     * {@link #add}'s grouped path whatever the pairs, in tiles of {@code tilePairs} ({@link #TILE_PAIRS} or
     * {@link #SMALL_TILE_PAIRS}; the small tile only for BF16 weights): for tests. The workspace must hold
     * {@link #groupedWorkspaceBytes}.
     */
    void addGrouped(CudaStream stream, DeviceBuffer x, int rows, int hidden, DeviceMatrix input,
            ExpertActivation activation, DeviceMatrix down, int width, DeviceBuffer ids, DeviceBuffer weights,
            int perToken, DeviceBuffer workspace, DeviceBuffer out, int tilePairs) {
        int experts = requireBlock(x, rows, hidden, input, activation, down, width, ids, weights, perToken, out);
        if (tilePairs != TILE_PAIRS && (tilePairs != SMALL_TILE_PAIRS || input.dtype() != DType.BF16)) {
            throw new IllegalArgumentException("tiles of " + tilePairs + " pairs: " + TILE_PAIRS + ", or "
                    + SMALL_TILE_PAIRS + " for BF16 weights");
        }
        Workspace layout = requireWorkspace(workspace, rows, (long) rows * perToken, experts, width, hidden, true);
        if (rows > 0) {
            grouped(stream, x, rows, hidden, input, activation, down, width, ids, weights, perToken, experts, layout,
                    workspace.address(), tilePairs, out);
        }
    }

    /** The grouped path's four launches (rows > 0), in tiles of {@code tilePairs} pairs. */
    private void grouped(CudaStream stream, DeviceBuffer x, int rows, int hidden, DeviceMatrix input,
            ExpertActivation activation, DeviceMatrix down, int width, DeviceBuffer ids, DeviceBuffer weights,
            int perToken, int experts, Workspace layout, long base, int tilePairs, DeviceBuffer out) {
        boolean bf16 = input.dtype() == DType.BF16;
        boolean small = tilePairs == SMALL_TILE_PAIRS;
        boolean gated = activation == ExpertActivation.SILU_GATED;
        long pairs = (long) rows * perToken;
        long tiles = base + layout.tiles();
        long sorted = base + layout.sorted();
        long x16 = base + layout.x16();
        long activated = base + layout.activated();
        long y = base + layout.y();
        // At most ceil(pairs / T) + E - 1 tiles (each expert's last one partly full); the table's
        // region holds the small tiles' count, the most.
        int tileCapacity = Workspace.tileCapacity(pairs, experts, tilePairs);
        long xElements = (long) rows * hidden;
        // 1. The pairs grouped by expert (block 0) and, for the tensor cores, x in bf16 (the other blocks).
        int convertBlocks = bf16 ? (int) Math.min(CONVERT_BLOCKS_MAX, (xElements + GROUP_THREADS - 1) / GROUP_THREADS)
                : 0;
        group.launch(stream, 1 + convertBlocks, 1, 1, GROUP_THREADS, 0, ids, (int) pairs, experts, tiles, tileCapacity,
                tilePairs, sorted, x, xElements, bf16 ? x16 : 0L);
        // 2, 3. The tiles' input then down products: x over the tile table, y over the outputs (an input
        // tile makes half as many outputs of gated experts: their gate and up rows).
        if (bf16) {
            Kernel inputTiles = gated ? (small ? smallTileGateUpBf16 : tileGateUpBf16)
                    : (small ? smallTileUpBf16 : tileUpBf16);
            int ring = small ? SMALL_TILE_RING_BYTES : TILE_RING_BYTES;
            inputTiles.launch(stream, tileCapacity, outputBlocks(width, gated ? MMA_GATE_UP_OUTPUTS : MMA_DOWN_OUTPUTS),
                    1, THREADS, ring, tiles, sorted, perToken, x16, hidden, input.data(), width, activated);
            (small ? smallTileDownBf16 : tileDownBf16).launch(stream, tileCapacity,
                    outputBlocks(hidden, MMA_DOWN_OUTPUTS), 1, THREADS, ring, tiles, sorted, perToken, activated, width,
                    down.data(), hidden, y);
        } else {
            (gated ? tileGateUpF32 : tileUpF32).launch(stream, tileCapacity,
                    outputBlocks(width, gated ? FMA_GATE_UP_OUTPUTS : FMA_DOWN_OUTPUTS), 1, THREADS, 0, tiles, sorted,
                    perToken, x, hidden, input.data(), width, activated);
            tileDownF32.launch(stream, tileCapacity, outputBlocks(hidden, FMA_DOWN_OUTPUTS), 1, THREADS, 0, tiles,
                    sorted, perToken, activated, width, down.data(), hidden, y);
        }
        // 4. Each row's slots in order, added to out once: x over the outputs, y over the rows.
        combine.launch(stream, Kernel.blocksFor(hidden, THREADS), Math.min(rows, MAX_GRID_Y), 1, THREADS, 0, y, rows,
                perToken, hidden, experts, ids, weights, out);
    }

    /** Checks the router's scores against the block's experts {@code held} (addRouted's, addRoutedGrouped's). */
    private static void requireScores(RoutedExpertsRouter router, DeviceBuffer scores, int rows, int experts,
            int perToken, int held) {
        if (held != experts) {
            throw new IllegalArgumentException("the weights hold " + held + " experts; the scores " + experts);
        }
        router.require(experts, perToken);
        scores.requireFloats((long) rows * experts, "scores");
    }

    /** Checks a block's arguments (add's, addRouted's); returns E. */
    private static int requireBlock(DeviceBuffer x, int rows, int hidden, DeviceMatrix input,
            ExpertActivation activation, DeviceMatrix down, int width, DeviceBuffer ids, DeviceBuffer weights,
            int perToken, DeviceBuffer out) {
        RowKernels.requireNonNegative(rows, "rows");
        RowKernels.requirePositive(hidden, "hidden");
        RowKernels.requirePositive(width, "width");
        int experts = inputExperts(input, activation, width, hidden);
        int downExperts = expertsOf(down, "down", hidden, width, "hidden (" + hidden + ")", "width");
        if (downExperts != experts) {
            throw new IllegalArgumentException("down holds " + downExperts + " experts; the input matrix " + experts);
        }
        if (down.dtype() != input.dtype()) {
            throw new IllegalArgumentException(
                    "down is " + down.dtype() + " and the input matrix " + input.dtype() + "; they must be alike");
        }
        if (experts > MAX_EXPERTS) {
            throw new IllegalArgumentException("the weights hold " + experts + " experts; at most " + MAX_EXPERTS);
        }
        requirePerToken(perToken, experts);
        long pairs = requirePairs(rows, perToken);
        x.requireFloats((long) rows * hidden, "x");
        ids.requireBytes(4 * pairs, "ids");
        weights.requireFloats(pairs, "weights");
        out.requireFloats((long) rows * hidden, "out");
        return experts;
    }

    /** The experts an input matrix holds: rows a multiple of {@link ExpertActivation#inputRows}. */
    private static int inputExperts(DeviceMatrix input, ExpertActivation activation, int width, int hidden) {
        long rows = activation.inputRows(width);
        return expertsOf(input, activation == ExpertActivation.SILU_GATED ? "gateAndUp" : "up", rows, hidden,
                (activation == ExpertActivation.SILU_GATED ? "2 · width (" : "width (") + rows + ")", "hidden");
    }

    private static Workspace requireWorkspace(DeviceBuffer workspace, int rows, long pairs, int experts, int width,
            int hidden, boolean grouped) {
        Workspace layout = Workspace.of(rows, pairs, experts, width, hidden, grouped);
        workspace.requireBytes(layout.bytes(), "workspace");
        if (workspace.address() % 16 != 0) {
            throw new IllegalArgumentException("workspace must start 16-byte aligned (the tile table's int4)");
        }
        return layout;
    }

    /** Blocks of {@code each} outputs over {@code outputs}, within a grid's y dimension. */
    private static int outputBlocks(int outputs, int each) {
        long blocks = ((long) outputs + each - 1) / each;
        if (blocks > MAX_GRID_Y) {
            throw new IllegalArgumentException(outputs + " outputs need " + blocks + " blocks of " + each
                    + "; a grid's y dimension holds " + MAX_GRID_Y);
        }
        return (int) blocks;
    }

    /**
     * {@link #add}'s workspace, byte offsets from its start. Per-pair path (pairs ≤ {@link #PER_PAIR_MAX_PAIRS}):
     * the activated values (rows, k, F) f32 from 0. Grouped path: the tile table (int4 of {expert, first sorted
     * place, pairs, 0}, room for the small tiles' count, the larger), the pairs in expert order (pairs int32), x
     * in bf16 (rows, H), the activated values by sorted place ((pairs, F), f32 or bf16) and each pair's expert
     * output y (pairs, H) f32.
     */
    private record Workspace(boolean grouped, long tiles, long sorted, long x16, long activated, long y,
            long bytes) {

        static Workspace of(int rows, long pairs, int experts, int width, int hidden, boolean grouped) {
            if (!grouped) {
                return new Workspace(false, 0, 0, 0, 0, 0, aligned(4 * pairs * width));
            }
            long tiles = 0;
            long sorted = tiles + aligned(16L * tileCapacity(pairs, experts, SMALL_TILE_PAIRS));
            long x16 = sorted + aligned(4 * pairs);
            long activated = x16 + aligned(2L * rows * hidden);
            long y = activated + aligned(4 * pairs * width);
            long end = y + aligned(4 * pairs * hidden);
            return new Workspace(true, tiles, sorted, x16, activated, y, end);
        }

        /** Room for every tile of T pairs: Σ_e ceil(count_e / T) ≤ ceil(pairs / T) + E - 1. */
        static int tileCapacity(long pairs, int experts, int tilePairs) {
            return (int) ((pairs + tilePairs - 1) / tilePairs + experts);
        }

        private static long aligned(long bytes) {
            return (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        }
    }

    static void requireExperts(int experts) {
        if (experts < 1 || experts > MAX_EXPERTS) {
            throw new IllegalArgumentException("experts must be in [1, " + MAX_EXPERTS + "], not " + experts);
        }
    }

    private static void requirePerToken(int perToken, int experts) {
        if (perToken < 1 || perToken > Math.min(experts, MAX_PER_TOKEN)) {
            throw new IllegalArgumentException("perToken must be in [1, min(experts, " + MAX_PER_TOKEN + ")] = [1, "
                    + Math.min(experts, MAX_PER_TOKEN) + "], not " + perToken);
        }
    }

    /** rows · k, which the kernels index in int. */
    private static long requirePairs(int rows, int perToken) {
        long pairs = (long) rows * perToken;
        if (pairs > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("rows · perToken (" + rows + " · " + perToken + ") must fit an int");
        }
        return pairs;
    }

    /**
     * The experts a stacked matrix holds: BF16 or F32, {@code cols} columns, rows a positive
     * multiple of {@code rowsPerExpert}.
     */
    private static int expertsOf(DeviceMatrix matrix, String name, long rowsPerExpert, int cols,
            String rowsPerExpertName, String colsName) {
        if (matrix.dtype() != DType.BF16 && matrix.dtype() != DType.F32) {
            throw new IllegalArgumentException(name + " must be BF16 or F32, not " + matrix.dtype());
        }
        if (matrix.cols() != cols) {
            throw new IllegalArgumentException(name + " has " + matrix.cols() + " columns; " + colsName + " is " + cols);
        }
        if (matrix.rows() == 0 || matrix.rows() % rowsPerExpert != 0) {
            throw new IllegalArgumentException(name + "'s " + matrix.rows() + " rows are not a positive multiple of "
                    + rowsPerExpertName + ", the rows of one expert");
        }
        return (int) (matrix.rows() / rowsPerExpert);
    }
}
