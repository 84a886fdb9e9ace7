package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;
import java.util.Arrays;
import java.util.List;

/**
 * The decode step's routed experts in one wave of blocks (routed_experts_walk.cu): {@link
 * RoutedExpertsKernel#routeGateUp}'s and {@link RoutedExpertsKernel#addRouted}'s down launch with each
 * block routing its row once and its warps walking many outputs, a warp's next weight row in flight
 * while it sums one. The outputs, ids and weights are those of routed_experts.cu's launches bit for bit;
 * only the grid differs. They take BF16 weights whose rows are whole 16-byte chunks that a lane holds
 * in one pass (H ≤ 3072 ungated, ≤ 1536 gated; F ≤ 2048), on 16-byte aligned buffers; other blocks
 * take routed_experts.cu's launches. The gate/up launch is taken only where routed_experts.cu's (a
 * block an 8 outputs of a pair) would not fit one wave: where it does, it routes once a block too, and
 * its warps' one output each came out faster than the walk's few (granite-4.0-h-tiny's shape on an
 * H200: 8.7 µs against 10.0, docs/performance.md). {@code -Dcoil.cuda.expertsWalk=false} turns them off.
 */
final class RoutedExpertsWalk {

    /** {@code -Dcoil.cuda.expertsWalk} (on unless {@code false}). */
    static final String PROPERTY = "coil.cuda.expertsWalk";

    private static final int WARPS = 8;
    private static final int THREADS = 32 * WARPS;
    private static final int MAX_GRID_Y = 65535;
    /** ROUTED_EXPERTS_WALK_MAX_OUTPUTS: the most outputs a down block takes. */
    private static final int MAX_OUTPUTS = 64;
    /** Chunks a lane holds of a row, for each kernel: a row of up to 32 times that many chunks. */
    private static final int[] GATED_HELD = {4, 6};
    private static final int[] UP_HELD = {4, 8, 12};
    private static final int[] DOWN_HELD = {2, 4, 8};

    private final boolean enabled;
    private final int multiprocessors;
    private final List<Variant> gatedKernels;
    private final List<Variant> upKernels;
    private final List<Variant> downKernels;
    /** How many blocks of routed_experts.cu's gate/up launch fit the device at once. */
    private final long perPairWave;

    /** perPairKernel: routed_experts.cu's routing gate/up launch, the one these stand in for. */
    RoutedExpertsWalk(KernelModule module, Kernel perPairKernel) {
        this.enabled = !"false".equalsIgnoreCase(System.getProperty(PROPERTY, "true"));
        this.multiprocessors = module.multiprocessors();
        this.perPairWave = (long) multiprocessors * Math.max(1, perPairKernel.residentBlocks(THREADS, 0));
        this.gatedKernels = load(module, "routed_experts_walk_gate_up_bf16_", GATED_HELD);
        this.upKernels = load(module, "routed_experts_walk_up_bf16_", UP_HELD);
        this.downKernels = load(module, "routed_experts_walk_down_add_bf16_", DOWN_HELD);
    }

    /** One kernel of a family: the chunks a lane holds of a row, and its blocks a multiprocessor holds. */
    private record Variant(int held, Kernel kernel, int resident) {
    }

    private static List<Variant> load(KernelModule module, String prefix, int[] held) {
        return Arrays.stream(held).mapToObj(chunks -> {
            Kernel kernel = module.kernel(prefix + chunks).waitsForPreviousKernel();
            return new Variant(chunks, kernel, Math.max(1, kernel.residentBlocks(THREADS, 0)));
        }).toList();
    }

    /** The first kernel whose held chunks cover a row of {@code chunks} chunks, or null. */
    private static Variant variantFor(List<Variant> family, int chunks) {
        return family.stream().filter(variant -> chunks <= 32 * variant.held()).findFirst().orElse(null);
    }

    private static boolean aligned(long address) {
        return address % 16 == 0;
    }

    /**
     * routeGateUp's launch if these kernels take the block (returns true), else nothing (false).
     * Arguments as {@link RoutedExpertsKernel#routeGateUp}'s, checked there.
     */
    boolean routeGateUp(CudaStream stream, RoutedExpertsRouter router, DeviceBuffer logits, int experts, int perToken,
            DeviceBuffer x, int rows, int hidden, DeviceMatrix input, ExpertActivation activation, int width,
            DeviceBuffer ids, DeviceBuffer weights, DeviceBuffer out) {
        Variant variant = variantFor(activation.gated() != 0 ? gatedKernels : upKernels, hidden / 8);
        if (!enabled || input.dtype() != DType.BF16 || hidden % 8 != 0 || variant == null
                || !aligned(input.data().address()) || !aligned(x.address())) {
            return false;
        }
        long pairs = Math.min((long) rows * perToken, MAX_GRID_Y);
        if (Kernel.blocksFor(width, WARPS) * pairs <= perPairWave) {
            return false; // routed_experts.cu's launch is one wave
        }
        // One wave: the pairs share the resident blocks, each pair at least one block and at most a warp an output.
        int perPair = (int) Math.max(1, Math.min(Kernel.blocksFor(width, WARPS),
                ((long) multiprocessors * variant.resident() + pairs - 1) / pairs));
        variant.kernel().launch(stream, perPair, (int) pairs, 1, THREADS, 0, logits, experts, perToken, router.scoring(),
                router.biasAddress(), router.groups(), router.groupsChosen(), router.scale(), x, rows, hidden,
                input.data(), width, ids, weights, out);
        return true;
    }

    /**
     * The down launch of {@link RoutedExpertsKernel#addRouted}'s per-pair path right after its
     * routeGateUp, if these kernels take the block (returns true), else nothing (false).
     */
    boolean routeDownAdd(CudaStream stream, RoutedExpertsRouter router, DeviceBuffer scores, DeviceBuffer activated,
            int rows, int perToken, int width, DeviceMatrix down, int experts, int hidden, DeviceBuffer out) {
        Variant variant = variantFor(downKernels, width / 8);
        if (!enabled || down.dtype() != DType.BF16 || width % 8 != 0 || variant == null
                || !aligned(down.data().address()) || !aligned(activated.address())) {
            return false;
        }
        int gridRows = Math.min(rows, MAX_GRID_Y);
        // One wave: each block's outputs so that the rows' blocks fit the resident ones, up to MAX_OUTPUTS.
        long wave = (long) multiprocessors * variant.resident();
        int outputs = (int) Math.max(1, Math.min(MAX_OUTPUTS, ((long) hidden * gridRows + wave - 1) / wave));
        variant.kernel().launch(stream, Kernel.blocksFor(hidden, outputs), gridRows, 1, THREADS, 0, scores,
                router.scoring(), router.biasAddress(), router.groups(), router.groupsChosen(), router.scale(),
                activated, rows, perToken, width, down.data(), experts, hidden, outputs, out);
        return true;
    }
}
