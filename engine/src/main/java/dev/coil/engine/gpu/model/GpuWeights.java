package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.kernels.RoutedExpertsKernel;
import dev.coil.engine.load.Checkpoint;
import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ExpertTensors;
import dev.coil.engine.model.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * A checkpoint's weights on the device, looked up by the names and shapes {@code ModelLoader}
 * uses: matrices in their storage dtype (bf16 stays bf16), small vectors widened to f32.
 */
final class GpuWeights implements AutoCloseable {

    /** One residual block: its pre-norm weight [hidden] and its mixer's tensors. */
    record Block(BlockSpec spec, DeviceBuffer norm, Mixer mixer) {
    }

    sealed interface Mixer {
    }

    /** in_proj [inner + channels + heads, hidden]; conv [channels, kernel]; A = -exp(A_log), D, dt_bias [heads]. */
    record Mamba(BlockSpec.Mamba spec, DeviceMatrix inProjection, DeviceBuffer convWeight, DeviceBuffer convBias,
            DeviceBuffer dtBias, DeviceBuffer decay, DeviceBuffer skip, DeviceBuffer norm, DeviceMatrix outProjection)
            implements Mixer {
    }

    record Attention(BlockSpec.Attention spec, DeviceMatrix query, DeviceMatrix key, DeviceMatrix value,
            DeviceMatrix output) implements Mixer {
    }

    /**
     * gateAndUp stacked [2F, hidden] (gate null, up null), or gate and up apart, or up alone (squared
     * ReLU); experts null for a dense block.
     */
    record Mlp(BlockSpec.Mlp spec, DeviceMatrix gateAndUp, DeviceMatrix gate, DeviceMatrix up, DeviceMatrix down,
            Experts experts) implements Mixer {
    }

    /**
     * Routed experts: router [count, hidden]; the sigmoid router's correction bias [count] f32 (else
     * null); every expert's input rows stacked [count · R, size] (R = 2·width of gate then up rows, or
     * width up rows: {@link BlockSpec.ExpertKind#inputRows}); every expert's down rows [count · size,
     * width]; size = hidden, or the latent size behind fc1_latent_proj (latentIn [latent, hidden]) and
     * fc2_latent_proj (latentOut [hidden, latent]), both null without one.
     */
    record Experts(BlockSpec.Experts spec, DeviceMatrix router, DeviceBuffer correctionBias, DeviceMatrix input,
            DeviceMatrix down, DeviceMatrix latentIn, DeviceMatrix latentOut) {
    }

    private final List<AutoCloseable> owned = new ArrayList<>();
    private final CudaDevice device;
    private final Checkpoint checkpoint;
    private final ModelConfig config;
    final DeviceMatrix embeddings; // [vocab, hidden]
    final List<Block> blocks = new ArrayList<>();
    final DeviceBuffer finalNorm; // [hidden]
    final DeviceMatrix lmHead; // [vocab, hidden]; the embeddings when tied

    GpuWeights(CudaDevice device, ModelConfig config, Checkpoint checkpoint) {
        this.device = device;
        this.config = config;
        this.checkpoint = checkpoint;
        try {
            int hidden = config.hiddenSize();
            embeddings = matrix(embeddingName(), config.vocabSize(), hidden);
            for (BlockSpec spec : config.blocks()) {
                DeviceBuffer norm = floats(spec.normName(), hidden);
                blocks.add(new Block(spec, norm, switch (spec) {
                    case BlockSpec.Mamba mamba -> mamba(mamba);
                    case BlockSpec.Attention attention -> attention(attention);
                    case BlockSpec.Mlp mlp -> mlp(mlp);
                }));
            }
            finalNorm = floats(config.finalNormName(), hidden);
            lmHead = config.lmHeadName() == null ? embeddings : matrix(config.lmHeadName(), config.vocabSize(), hidden);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Bytes of matrix weights one decode step reads: every block's projections and lm_head. */
    long matrixBytes() {
        long bytes = lmHead.data().bytes();
        for (Block block : blocks) {
            bytes += switch (block.mixer()) {
                case Mamba m -> m.inProjection().data().bytes() + m.outProjection().data().bytes();
                case Attention a -> a.query().data().bytes() + a.key().data().bytes() + a.value().data().bytes()
                        + a.output().data().bytes();
                case Mlp m -> bytes(m.gateAndUp()) + bytes(m.gate()) + bytes(m.up()) + m.down().data().bytes()
                        + expertBytesPerToken(m.experts());
            };
        }
        return bytes;
    }

    /** Every block's projection matrices (lm_head not included), in block order. */
    List<DeviceMatrix> projections() {
        List<DeviceMatrix> matrices = new ArrayList<>();
        for (Block block : blocks) {
            switch (block.mixer()) {
                case Mamba m -> matrices.addAll(List.of(m.inProjection(), m.outProjection()));
                case Attention a -> matrices.addAll(List.of(a.query(), a.key(), a.value(), a.output()));
                case Mlp m -> {
                    for (DeviceMatrix matrix : new DeviceMatrix[] {m.gateAndUp(), m.gate(), m.up(), m.down()}) {
                        if (matrix != null) {
                            matrices.add(matrix);
                        }
                    }
                    if (m.experts() != null) {
                        matrices.add(m.experts().router());
                        if (m.experts().latentIn() != null) {
                            matrices.addAll(List.of(m.experts().latentIn(), m.experts().latentOut()));
                        }
                    }
                }
            }
        }
        return matrices;
    }

    /** The router, the latent projections and the experts one token takes (a batch-1 step's share of the experts). */
    private static long expertBytesPerToken(Experts experts) {
        if (experts == null) {
            return 0;
        }
        BlockSpec.Experts spec = experts.spec();
        return experts.router().data().bytes() + bytes(experts.latentIn()) + bytes(experts.latentOut())
                + (experts.input().data().bytes() + experts.down().data().bytes()) / spec.count() * spec.perToken();
    }

    private static long bytes(DeviceMatrix matrix) {
        return matrix == null ? 0 : matrix.data().bytes();
    }

    private Mamba mamba(BlockSpec.Mamba spec) {
        if (spec.projectionBias()) {
            throw unsupportedBias(spec.prefix() + "in_proj");
        }
        int hidden = config.hiddenSize();
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        String p = spec.prefix();
        DeviceMatrix in = matrix(p + "in_proj.weight", spec.projectionWidth(), hidden);
        DeviceBuffer conv = floats(p + "conv1d.weight", channels, 1, spec.convKernel());
        DeviceBuffer convBias = spec.convBias() ? floats(p + "conv1d.bias", channels) : null;
        DeviceBuffer dtBias = floats(p + "dt_bias", spec.heads());
        float[] aLog = checkpoint.floats(p + "A_log", spec.heads());
        float[] decay = new float[aLog.length];
        for (int h = 0; h < aLog.length; h++) {
            decay[h] = (float) -Math.exp(aLog[h]);
        }
        DeviceBuffer a = own(device.upload(decay));
        DeviceBuffer skip = floats(p + "D", spec.heads());
        DeviceBuffer norm = floats(p + "norm.weight", inner);
        DeviceMatrix out = matrix(p + "out_proj.weight", hidden, inner);
        return new Mamba(spec, in, conv, convBias, dtBias, a, skip, norm, out);
    }

    private Attention attention(BlockSpec.Attention spec) {
        if (spec.bias()) {
            throw unsupportedBias(spec.prefix() + "q_proj");
        }
        int hidden = config.hiddenSize();
        int queryWidth = spec.queryHeads() * spec.headDim();
        int kvWidth = spec.kvHeads() * spec.headDim();
        String p = spec.prefix();
        return new Attention(spec, matrix(p + "q_proj.weight", queryWidth, hidden),
                matrix(p + "k_proj.weight", kvWidth, hidden), matrix(p + "v_proj.weight", kvWidth, hidden),
                matrix(p + "o_proj.weight", hidden, queryWidth));
    }

    private Mlp mlp(BlockSpec.Mlp spec) {
        if (spec.bias()) {
            throw unsupportedBias(spec.prefix() + "MLP");
        }
        int hidden = config.hiddenSize();
        int width = spec.intermediateSize();
        String p = spec.prefix();
        Experts experts = experts(spec.experts());
        return switch (spec.kind()) {
            case GATED_SILU_FUSED -> new Mlp(spec, matrix(p + "input_linear.weight", 2 * width, hidden), null, null,
                    matrix(p + "output_linear.weight", hidden, width), experts);
            case GATED_SILU -> new Mlp(spec, null, matrix(p + "gate_proj.weight", width, hidden),
                    matrix(p + "up_proj.weight", width, hidden), matrix(p + "down_proj.weight", hidden, width), experts);
            case SQUARED_RELU -> new Mlp(spec, null, null, matrix(p + "up_proj.weight", width, hidden),
                    matrix(p + "down_proj.weight", hidden, width), experts);
        };
    }

    /** The routed experts' tensors as {@code ModelLoader} reads them, or null for a dense block. */
    private Experts experts(BlockSpec.Experts spec) {
        if (spec == null) {
            return null;
        }
        requireExpertsTheKernelsTake(spec, checkpoint.folder().toString());
        int hidden = config.hiddenSize();
        int size = spec.rowSize(hidden);
        boolean latent = spec.latent() > 0;
        return new Experts(spec, matrix(ExpertTensors.routerName(spec), spec.count(), hidden),
                spec.router().sigmoid() ? floats(ExpertTensors.correctionBiasName(spec), spec.count()) : null,
                own(DeviceMatrix.uploadStacked(device, ExpertTensors.inputs(checkpoint, spec, hidden))),
                own(DeviceMatrix.uploadStacked(device, ExpertTensors.downs(checkpoint, spec, hidden))),
                latent ? matrix(spec.latentName(1) + ".weight", size, hidden) : null,
                latent ? matrix(spec.latentName(2) + ".weight", hidden, size) : null);
    }

    /**
     * Routed experts beyond what the kernels take (RoutedExpertsKernel: a routing thread an expert,
     * a token's experts and a router's groups in fixed arrays) fail at load, not at the first step.
     */
    static void requireExpertsTheKernelsTake(BlockSpec.Experts spec, String folder) {
        boolean groupsFit = !spec.router().sigmoid() || spec.router().groups() <= RoutedExpertsKernel.MAX_GROUPS;
        if (spec.count() > RoutedExpertsKernel.MAX_EXPERTS || spec.perToken() > RoutedExpertsKernel.MAX_PER_TOKEN
                || !groupsFit) {
            throw new CheckpointException(folder + ": " + spec.prefix() + " has " + spec.count() + " routed experts, "
                    + spec.perToken() + " a token, in " + spec.router().groups() + " groups; the GPU model takes at most "
                    + RoutedExpertsKernel.MAX_EXPERTS + " experts, " + RoutedExpertsKernel.MAX_PER_TOKEN
                    + " a token and " + RoutedExpertsKernel.MAX_GROUPS + " groups. Run this checkpoint on the CPU "
                    + "(--devices cpu).");
        }
    }

    private static CheckpointException unsupportedBias(String where) {
        return new CheckpointException("The GPU model does not yet support projection biases (" + where
                + " has one); run this checkpoint on the CPU.");
    }

    /** Mamba checkpoints written by mamba_ssm or old transformers spell "embedding" (singular). */
    private String embeddingName() {
        String name = config.embeddingName();
        if (!checkpoint.has(name) && name.endsWith("embeddings.weight")) {
            String singular = name.replace("embeddings.weight", "embedding.weight");
            if (checkpoint.has(singular)) {
                return singular;
            }
        }
        return name;
    }

    private DeviceMatrix matrix(String name, int rows, int cols) {
        return own(DeviceMatrix.upload(device, checkpoint.matrix(name, rows, cols)));
    }

    private DeviceBuffer floats(String name, int... shape) {
        return own(device.upload(checkpoint.floats(name, shape)));
    }

    private <T extends AutoCloseable> T own(T resource) {
        owned.add(resource);
        return resource;
    }

    @Override
    public void close() {
        for (AutoCloseable resource : owned) {
            try {
                resource.close();
            } catch (Exception e) {
                throw new IllegalStateException("could not free a device weight: " + e.getMessage(), e);
            }
        }
        owned.clear();
    }
}
