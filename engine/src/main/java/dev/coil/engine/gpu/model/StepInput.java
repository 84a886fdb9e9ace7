package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.kernels.ExpertsRouterKernel;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.gpu.kernels.InvariantGemmKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.ModelConfig;
import java.util.List;

/**
 * The normed activations a mixer's first products read: f32 [rows, hidden], or, where every one of
 * those products has bf16 weights, already rounded to bf16 by the norm (the conversion a product
 * would otherwise launch itself, once per product). Or, in a decode step whose first products all
 * run in the few-rows product, not made yet: {@code pending} says how those products make it
 * themselves (the residual update and the pre-norm inside their launch, values null).
 * {@code routerScores}: a block with routed experts whose router's scores were made with its norm
 * ({@code GpuFeedForward.normAndScore}; null otherwise); {@code residualMoved}: that launch wrote the
 * updated residual stream to the spare buffer.
 */
record StepInput(DeviceBuffer values, DType dtype, GemvKernel.ResidualNorm pending, DeviceBuffer routerScores,
        boolean residualMoved) {

    StepInput(DeviceBuffer values, DType dtype) {
        this(values, dtype, null, null, false);
    }

    StepInput(DeviceBuffer values, DType dtype, GemvKernel.ResidualNorm pending) {
        this(values, dtype, pending, null, false);
    }

    /**
     * True when the residual stream moved to the other buffer (the pending norm's hOut, or the spare
     * the experts' norm wrote): the caller's h from now on.
     */
    boolean movesResidual() {
        return residualMoved || pending != null && pending.hOut() != null;
    }

    /** out = input · wᵀ for [rows, w.cols] input: straight into cuBLAS when prepared, else converted first. */
    void project(DeviceKernels k, int rows, DeviceMatrix w, DeviceBuffer out) {
        if (pending != null) {
            k.matmul.gemv().projectResidualNorm(k.stream, pending, rows, List.of(new GemvKernel.Product(w, out)));
            return;
        }
        if (dtype == DType.F32) {
            k.matmul.matmul(k.stream, values, rows, w, out);
        } else {
            if (w.dtype() != dtype) {
                throw new IllegalStateException("a " + dtype + " operand for " + w.dtype() + " weights");
            }
            k.matmul.matmulPrepared(k.stream, values, rows, w, out);
        }
    }

    /**
     * True when the few-rows product takes this input times w (in one launch with its operand), or,
     * batch-invariant, the invariant product's few-rows kernel does: either may end in the conv
     * update or silu(gate) · up ({@link #projectWithConv}, {@link #projectSiluPair}).
     */
    boolean fewRows(DeviceKernels k, int rows, DeviceMatrix w) {
        InvariantGemmKernel invariant = k.matmul.invariant();
        if (invariant != null) {
            return pending == null && invariant.endsProducts(rows, w);
        }
        return pending != null ? k.matmul.gemv().supports(rows, w) : k.matmul.gemv().supportsPlain(rows, w);
    }

    /**
     * out = input · wᵀ ending in the conv update {@code conv}, in one few-rows launch: only where
     * {@link #fewRows} (the caller checks).
     */
    void projectWithConv(DeviceKernels k, int rows, DeviceMatrix w, DeviceBuffer out, GemvKernel.Conv conv) {
        if (k.matmul.invariant() != null) {
            k.matmul.invariant().projectWithConv(k.stream, values, dtype, rows, w, out, conv);
            return;
        }
        List<GemvKernel.Product> products = List.of(new GemvKernel.Product(w, out));
        if (pending != null) {
            k.matmul.gemv().projectResidualNorm(k.stream, pending, rows, products, conv);
        } else {
            k.matmul.gemv().project(k.stream, values, dtype, w.cols(), rows, products, conv);
        }
    }

    /**
     * The MLP's stacked gate and up (w: [2·I, hidden]) ending in hidden = bf16(silu(gate) · up), (rows, I),
     * in one few-rows launch: only where {@link #fewRows} (the caller checks).
     */
    void projectSiluPair(DeviceKernels k, int rows, DeviceMatrix w, DeviceBuffer hidden) {
        if (k.matmul.invariant() != null) {
            k.matmul.invariant().projectSiluPair(k.stream, values, dtype, rows, w, hidden);
            return;
        }
        GemvKernel.SiluPair pair = new GemvKernel.SiluPair(w, hidden);
        if (pending != null) {
            k.matmul.gemv().projectResidualNorm(k.stream, pending, rows, pair);
        } else {
            k.matmul.gemv().projectSiluPair(k.stream, values, dtype, w.cols(), rows, pair);
        }
    }

    /**
     * Each product's out = input · wᵀ: in one launch where the few-rows product takes them all
     * (q, k and v of a decode step), else one by one.
     */
    void projectAll(DeviceKernels k, int rows, GemvKernel.Product... products) {
        GemvKernel gemv = k.matmul.gemv();
        boolean together = true;
        for (GemvKernel.Product product : products) {
            together &= (pending != null ? gemv.supports(rows, product.weights())
                    : gemv.supportsPlain(rows, product.weights()))
                    && product.weights().cols() == products[0].weights().cols();
        }
        if (together && pending != null) {
            gemv.projectResidualNorm(k.stream, pending, rows, List.of(products));
            return;
        }
        if (together) {
            gemv.project(k.stream, values, dtype, products[0].weights().cols(), rows, List.of(products));
            return;
        }
        if (pending != null) {
            throw new IllegalStateException("a pending norm needs its products in one launch");
        }
        for (GemvKernel.Product product : products) {
            project(k, rows, product.weights(), product.out());
        }
    }

    /**
     * A block's pre-norm over {@code rows} rows of h, written as the operand its mixer's first
     * products read: into normed16 as bf16 when all their weights are bf16 (a conversion launch
     * saved per product), else into normed as f32. After the first block the previous block's
     * residual update (h += update · residualMultiplier) is fused into the same launch.
     *
     * <p>With {@code spare} given (a decode step's second residual buffer) and every first product
     * of the block taken by the few-rows product, nothing is launched here: the products make the
     * update and the norm inside their launch, and the updated h goes to spare
     * ({@link #movesResidual}: the caller swaps h and spare). Before routed experts, with spare given
     * and few rows, one launch makes the update (into spare), the f32 norm and the router's scores
     * ({@link #routerScores}).
     */
    static StepInput blockNorm(DeviceKernels k, ModelConfig config, GpuWeights.Block block, boolean first,
            DeviceBuffer h, DeviceBuffer update, DeviceBuffer normed, DeviceBuffer normed16, int rows,
            DeviceBuffer spare) {
        if (spare != null && fusesNorm(k, block, rows, config.hiddenSize())) {
            return new StepInput(null, DType.BF16, new GemvKernel.ResidualNorm(h, first ? null : update,
                    config.residualMultiplier(), first ? null : spare, block.norm(), config.normEps()));
        }
        if (spare != null && block.mixer() instanceof GpuWeights.Mlp mlp && mlp.experts() != null
                && ExpertsRouterKernel.supports(rows, config.hiddenSize())) {
            // A decode step's experts: the residual update (into spare), the norm (f32, as below) and
            // the router's scores in one launch.
            DeviceBuffer scores = GpuFeedForward.normAndScore(k, mlp.experts(), block.norm(), config, h,
                    first ? null : update, spare, normed, rows);
            return new StepInput(normed, DType.F32, null, scores, true);
        }
        return blockNorm(k, config, block, first, h, update, normed, normed16, rows);
    }

    static StepInput blockNorm(DeviceKernels k, ModelConfig config, GpuWeights.Block block, boolean first,
            DeviceBuffer h, DeviceBuffer update, DeviceBuffer normed, DeviceBuffer normed16, int rows) {
        boolean prepared = switch (block.mixer()) {
            case GpuWeights.Mamba mamba -> bf16For(mamba.inProjection());
            case GpuWeights.Attention attention -> bf16For(attention.query(), attention.key(), attention.value());
            // Routed experts read the f32 rows (their router through the matrix product).
            case GpuWeights.Mlp mlp -> mlp.experts() == null && bf16For(mlp.gateAndUp(), mlp.gate(), mlp.up());
        };
        StepInput input = prepared ? new StepInput(normed16, DType.BF16) : new StepInput(normed, DType.F32);
        int hidden = config.hiddenSize();
        if (first) {
            k.rmsNorm.launch(k.stream, h, rows, hidden, block.norm(), config.normEps(), input.values(), input.dtype());
        } else {
            k.rmsNorm.launchAfterResidual(k.stream, h, update, config.residualMultiplier(), rows, hidden, block.norm(),
                    config.normEps(), input.values(), input.dtype());
        }
        return input;
    }

    /**
     * True when each of the block's first products (those that read the pre-norm) runs in the few-rows
     * product, and the norm is worth making there ({@link GemvKernel#fusesResidualNorm}).
     */
    private static boolean fusesNorm(DeviceKernels k, GpuWeights.Block block, int rows, int hidden) {
        GemvKernel gemv = k.matmul.gemv();
        return switch (block.mixer()) {
            case GpuWeights.Mamba mamba -> gemv.supports(rows, mamba.inProjection())
                    && gemv.fusesResidualNorm(rows, hidden, List.of(mamba.inProjection()), false);
            case GpuWeights.Attention attention -> gemv.supports(rows, attention.query())
                    && gemv.supports(rows, attention.key()) && gemv.supports(rows, attention.value())
                    && gemv.fusesResidualNorm(rows, hidden, List.of(attention.query(), attention.key(),
                            attention.value()), false);
            // Routed experts read the normed rows themselves: no norm inside the products.
            case GpuWeights.Mlp mlp -> mlp.experts() == null && (mlp.gateAndUp() != null
                    ? gemv.supports(rows, mlp.gateAndUp())
                            && gemv.fusesResidualNorm(rows, hidden, List.of(mlp.gateAndUp()), true)
                    : mlp.gate() != null ? gemv.supports(rows, mlp.gate()) && gemv.supports(rows, mlp.up())
                            && gemv.fusesResidualNorm(rows, hidden, List.of(mlp.gate()), false)
                            && gemv.fusesResidualNorm(rows, hidden, List.of(mlp.up()), false)
                    : gemv.supports(rows, mlp.up()) && gemv.fusesResidualNorm(rows, hidden, List.of(mlp.up()), false));
        };
    }

    /** True when products with all of {@code consumers} can read a bf16 operand (all weights bf16). */
    static boolean bf16For(DeviceMatrix... consumers) {
        for (DeviceMatrix consumer : consumers) {
            if (consumer != null && consumer.dtype() != DType.BF16) {
                return false;
            }
        }
        return true;
    }
}
