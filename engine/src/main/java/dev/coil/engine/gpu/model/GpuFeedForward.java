package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.ExpertActivation;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.gpu.kernels.RoutedExpertsKernel;
import dev.coil.engine.gpu.kernels.RoutedExpertsRouter;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;

/**
 * The MLP blocks of {@code FeedForward} on the device: down(silu(gate(x)) · up(x)) or down(relu(up(x))²),
 * and with routed experts (Granite's or NemotronH's), their weighted sum added to that shared MLP's output
 * (behind a latent projection: fc2 of the sum over fc1 of the rows).
 */
final class GpuFeedForward {

    private GpuFeedForward() {
    }

    /** x: [rows, hidden] → out: [rows, hidden] f32. */
    static void forward(DeviceKernels k, GpuWeights.Mlp w, StepInput x, int rows, DeviceBuffer out) {
        shared(k, w, x, rows, out);
        if (w.experts() != null) {
            addExperts(k, w.experts(), x, rows, out);
        }
    }

    /**
     * out += Σ over each row's experts (in expert order) of weight · expert(x), as {@code RoutedExperts}:
     * the router's scores [rows, count] by the matrix product, then the routing and the experts
     * ({@code RoutedExpertsKernel.addRouted}: for a few rows the routing inside the gate/up launch and
     * the experts pair by pair, two launches; for many the routing, then grouped by expert on the
     * tensor cores). Where {@link #normAndScore} made the scores with the norm, no product here. x
     * must be f32 values ({@code StepInput.blockNorm} makes them so for a block with experts). Behind
     * a latent projection the experts read fc1(x) [rows, latent] and sum into a zeroed [rows, latent],
     * whose fc2 product [rows, hidden] is then added to out, as {@code RoutedExperts} adds it.
     */
    private static void addExperts(DeviceKernels k, GpuWeights.Experts experts, StepInput x, int rows,
            DeviceBuffer out) {
        if (x.pending() != null || x.dtype() != DType.F32) {
            throw new IllegalStateException("routed experts read f32 normed rows, not " + x.dtype()
                    + (x.pending() != null ? " made inside the products" : ""));
        }
        BlockSpec.Experts spec = experts.spec();
        int hidden = experts.router().cols();
        int size = spec.rowSize(hidden); // what the experts read and write a row
        DeviceBuffer scores = k.scratch.floats("experts.scores", (long) rows * spec.count());
        DeviceBuffer chosen = k.scratch.floats("experts.chosen", (long) rows * spec.perToken());
        DeviceBuffer weights = k.scratch.floats("experts.weights", (long) rows * spec.perToken());
        DeviceBuffer workspace = k.scratch.bytes("experts.workspace", k.batchInvariant
                ? RoutedExpertsKernel.groupedWorkspaceBytes(rows, spec.perToken(), spec.count(), spec.width(), size)
                : RoutedExpertsKernel.workspaceBytes(rows, spec.perToken(), spec.count(), spec.width(), size));
        if (x.routerScores() == null) {
            k.matmul.matmul(k.stream, x.values(), rows, experts.router(), scores);
        } else if (x.routerScores().address() != scores.address()) {
            throw new IllegalStateException("the router's scores were made elsewhere than experts.scores");
        }
        DeviceBuffer expertsIn = x.values();
        DeviceBuffer sum = out;
        if (experts.latentIn() != null) {
            expertsIn = k.scratch.floats("experts.latentIn", (long) rows * size);
            k.matmul.matmul(k.stream, x.values(), rows, experts.latentIn(), expertsIn);
            sum = k.scratch.floats("experts.latentSum", (long) rows * size);
            sum.fillAsync(0, k.stream);
        }
        if (k.batchInvariant) {
            k.routedExperts.addRoutedGrouped(k.stream, router(experts), scores, expertsIn, rows, size,
                    experts.input(), activation(spec.kind()), experts.down(), spec.width(), spec.count(),
                    spec.perToken(), chosen, weights, workspace, sum);
        } else {
            k.routedExperts.addRouted(k.stream, router(experts), scores, expertsIn, rows, size, experts.input(),
                    activation(spec.kind()), experts.down(), spec.width(), spec.count(), spec.perToken(), chosen,
                    weights, workspace, sum);
        }
        if (experts.latentOut() != null) {
            DeviceBuffer projected = k.scratch.floats("experts.latentOut", (long) rows * hidden);
            k.matmul.matmul(k.stream, sum, rows, experts.latentOut(), projected);
            k.residualAdd.launch(k.stream, out, projected, (long) rows * hidden, 1f);
        }
    }

    /**
     * A decode step's start of a block with routed experts, in one launch ({@code ExpertsRouterKernel}):
     * h + update into hOut, the block's norm of it into normed (f32), and the router's scores into the
     * scratch buffer {@link #addExperts} reads, which it returns.
     */
    static DeviceBuffer normAndScore(DeviceKernels k, GpuWeights.Experts experts, DeviceBuffer normWeight,
            ModelConfig config, DeviceBuffer h, DeviceBuffer update, DeviceBuffer hOut, DeviceBuffer normed, int rows) {
        DeviceBuffer scores = k.scratch.floats("experts.scores", (long) rows * experts.spec().count());
        k.expertsRouter.launch(k.stream, h, update, config.residualMultiplier(), normWeight, config.normEps(), rows,
                config.hiddenSize(), hOut, normed, experts.router(), scores);
        return scores;
    }

    /** The block's router as the kernels take it. */
    private static RoutedExpertsRouter router(GpuWeights.Experts experts) {
        BlockSpec.Router router = experts.spec().router();
        return router.sigmoid()
                ? RoutedExpertsRouter.sigmoid(experts.correctionBias(), router.groups(), router.groupsChosen(),
                        router.normalize(), router.scale())
                : RoutedExpertsRouter.SOFTMAX;
    }

    private static ExpertActivation activation(BlockSpec.ExpertKind kind) {
        return switch (kind) {
            case GATED_SILU_STACKED -> ExpertActivation.SILU_GATED;
            case SQUARED_RELU -> ExpertActivation.SQUARED_RELU;
        };
    }

    /** The shared (or only) MLP: x: [rows, hidden] → out: [rows, hidden] f32. */
    private static void shared(DeviceKernels k, GpuWeights.Mlp w, StepInput x, int rows, DeviceBuffer out) {
        int width = w.spec().intermediateSize();
        if (w.spec().kind() == BlockSpec.MlpKind.SQUARED_RELU) {
            DeviceBuffer hidden = k.scratch.floats("mlp.hidden", (long) rows * width);
            x.project(k, rows, w.up(), hidden);
            k.squaredRelu.launch(k.stream, hidden, (long) rows * width, hidden);
            k.matmul.matmul(k.stream, hidden, rows, w.down(), out);
            return;
        }
        GemvKernel gemv = k.matmul.gemv();
        if (w.gateAndUp() != null && x.fewRows(k, rows, w.gateAndUp()) && StepInput.bf16For(w.down())) {
            // A decode step: the stacked gate and up end in bf16 silu(gate) · up, which down reads as it
            // is (in the few-rows product where that takes it, else cuBLAS).
            DeviceBuffer hidden16 = k.scratch.bytes("mlp.hidden16", 2L * rows * width);
            x.projectSiluPair(k, rows, w.gateAndUp(), hidden16);
            new StepInput(hidden16, DType.BF16).project(k, rows, w.down(), out);
            return;
        }
        if (gemv.supports(rows, w.down())) {
            // A decode step whose gate and up the few-rows product does not end in silu(gate) · up:
            // down's launch makes it.
            GemvKernel.Product down = new GemvKernel.Product(w.down(), out);
            if (w.gateAndUp() != null) {
                DeviceBuffer stacked = k.scratch.floats("mlp.stacked", 2L * rows * width);
                x.project(k, rows, w.gateAndUp(), stacked);
                gemv.projectSiluProduct(k.stream, stacked, 2 * width, stacked.floatSlice(width, stacked.floats() - width),
                        2 * width, rows, down);
            } else {
                DeviceBuffer gate = k.scratch.floats("mlp.gate", (long) rows * width);
                DeviceBuffer up = k.scratch.floats("mlp.up", (long) rows * width);
                x.projectAll(k, rows, new GemvKernel.Product(w.gate(), gate), new GemvKernel.Product(w.up(), up));
                gemv.projectSiluProduct(k.stream, gate, width, up, width, rows, down);
            }
            return;
        }
        // silu(gate) · up goes straight into the down projection's operand type.
        DType hiddenType = StepInput.bf16For(w.down()) ? DType.BF16 : DType.F32;
        DeviceBuffer hidden = k.scratch.bytes("mlp.hidden", (long) rows * width * hiddenType.bytes());
        if (w.gateAndUp() != null) {
            DeviceBuffer stacked = k.scratch.floats("mlp.stacked", 2L * rows * width);
            x.project(k, rows, w.gateAndUp(), stacked);
            k.siluMultiply.launchStacked(k.stream, stacked, rows, width, hidden, hiddenType);
        } else {
            DeviceBuffer gate = k.scratch.floats("mlp.gate", (long) rows * width);
            DeviceBuffer up = k.scratch.floats("mlp.up", (long) rows * width);
            x.project(k, rows, w.gate(), gate);
            x.project(k, rows, w.up(), up);
            k.siluMultiply.launch(k.stream, gate, width, up, width, rows, width, hidden, hiddenType);
        }
        new StepInput(hidden, hiddenType).project(k, rows, w.down(), out);
    }
}
