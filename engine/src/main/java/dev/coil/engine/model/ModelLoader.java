package dev.coil.engine.model;

import dev.coil.engine.load.Checkpoint;
import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.ops.Matrix;
import java.util.ArrayList;
import java.util.List;

/**
 * Builds a {@link HybridModel} from a {@link ModelConfig} and the checkpoint's tensors. Every tensor
 * is looked up and shape-checked here, so a bad checkpoint fails at load, never mid-generation.
 * Large matrices stay memory-mapped in their storage dtype; small vectors are widened to f32.
 */
public final class ModelLoader {

    private final ModelConfig config;
    private final Checkpoint checkpoint;

    private ModelLoader(ModelConfig config, Checkpoint checkpoint) {
        this.config = config;
        this.checkpoint = checkpoint;
    }

    public static HybridModel build(ModelConfig config, Checkpoint checkpoint) {
        return new ModelLoader(config, checkpoint).build();
    }

    private HybridModel build() {
        int hidden = config.hiddenSize();
        int vocab = config.vocabSize();
        Matrix embeddings = checkpoint.matrix(embeddingName(), vocab, hidden);
        List<float[]> norms = new ArrayList<>();
        List<Mixer> mixers = new ArrayList<>();
        for (BlockSpec block : config.blocks()) {
            norms.add(checkpoint.floats(block.normName(), hidden));
            mixers.add(switch (block) {
                case BlockSpec.Mamba mamba -> mamba(mamba);
                case BlockSpec.Attention attention -> attention(attention);
                case BlockSpec.Mlp mlp -> mlp(mlp);
            });
        }
        float[] finalNorm = checkpoint.floats(config.finalNormName(), hidden);
        Matrix lmHead = embeddings;
        if (config.lmHeadName() != null) {
            if (!checkpoint.has(config.lmHeadName())) {
                throw new CheckpointException("The checkpoint has no tensor '" + config.lmHeadName()
                        + "' and config.json says tie_word_embeddings is false; the output projection is missing.");
            }
            lmHead = checkpoint.matrix(config.lmHeadName(), vocab, hidden);
        }
        return new HybridModel(config, embeddings, norms, mixers, finalNorm, lmHead);
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

    private Mamba2Mixer mamba(BlockSpec.Mamba spec) {
        int hidden = config.hiddenSize();
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int projected = spec.projectionWidth();
        String p = spec.prefix();
        Linear in = linear(p + "in_proj", projected, hidden, spec.projectionBias());
        float[] conv = checkpoint.floats(p + "conv1d.weight", channels, 1, spec.convKernel());
        float[] convBias = spec.convBias() ? checkpoint.floats(p + "conv1d.bias", channels) : null;
        float[] dtBias = checkpoint.floats(p + "dt_bias", spec.heads());
        float[] aLog = checkpoint.floats(p + "A_log", spec.heads());
        float[] skip = checkpoint.floats(p + "D", spec.heads());
        float[] norm = checkpoint.floats(p + "norm.weight", inner);
        Linear out = linear(p + "out_proj", hidden, inner, spec.projectionBias());
        return new Mamba2Mixer(spec, in, conv, convBias, dtBias, aLog, skip, norm, out);
    }

    private AttentionMixer attention(BlockSpec.Attention spec) {
        int hidden = config.hiddenSize();
        int queryWidth = spec.queryHeads() * spec.headDim();
        int kvWidth = spec.kvHeads() * spec.headDim();
        String p = spec.prefix();
        return new AttentionMixer(spec, linear(p + "q_proj", queryWidth, hidden, spec.bias()),
                linear(p + "k_proj", kvWidth, hidden, spec.bias()), linear(p + "v_proj", kvWidth, hidden, spec.bias()),
                linear(p + "o_proj", hidden, queryWidth, spec.bias()));
    }

    private FeedForward mlp(BlockSpec.Mlp spec) {
        FeedForward shared = denseMlp(spec);
        BlockSpec.Experts routed = spec.experts();
        if (routed == null) {
            return shared;
        }
        int hidden = config.hiddenSize();
        Matrix router = checkpoint.matrix(ExpertTensors.routerName(routed), routed.count(), hidden);
        float[] correctionBias = routed.router().sigmoid()
                ? checkpoint.floats(ExpertTensors.correctionBiasName(routed), routed.count()) : null;
        int size = routed.rowSize(hidden);
        boolean latent = routed.latent() > 0;
        return shared.withExperts(new RoutedExperts(routed, new Linear(router, null), correctionBias,
                ExpertTensors.inputs(checkpoint, routed, hidden), ExpertTensors.downs(checkpoint, routed, hidden),
                latent ? linear(routed.latentName(1), size, hidden, spec.bias()) : null,
                latent ? linear(routed.latentName(2), hidden, size, spec.bias()) : null));
    }

    private FeedForward denseMlp(BlockSpec.Mlp spec) {
        int hidden = config.hiddenSize();
        int width = spec.intermediateSize();
        String p = spec.prefix();
        return switch (spec.kind()) {
            case GATED_SILU_FUSED -> FeedForward.gatedStacked(spec, linear(p + "input_linear", 2 * width, hidden, spec.bias()),
                    linear(p + "output_linear", hidden, width, spec.bias()));
            case GATED_SILU -> FeedForward.gated(spec, linear(p + "gate_proj", width, hidden, spec.bias()),
                    linear(p + "up_proj", width, hidden, spec.bias()), linear(p + "down_proj", hidden, width, spec.bias()));
            case SQUARED_RELU -> FeedForward.squaredRelu(spec, linear(p + "up_proj", width, hidden, spec.bias()),
                    linear(p + "down_proj", hidden, width, spec.bias()));
        };
    }

    private Linear linear(String name, int out, int in, boolean bias) {
        Matrix weight = checkpoint.matrix(name + ".weight", out, in);
        return new Linear(weight, bias ? checkpoint.floats(name + ".bias", out) : null);
    }
}
