package dev.coil.engine.model.arch;

import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * NemotronHForCausalLM (dense): a pattern of blocks, M (Mamba-2), * (attention, NoPE) and
 * - (squared-ReLU MLP), each its own norm → mixer → residual. The Mamba inner size is
 * mamba_num_heads · mamba_head_dim; the gated norm is grouped by n_groups; dt is clamped below by
 * time_step_min in prefill (time_step_limit is ignored, as transformers does).
 */
final class NemotronH {

    private NemotronH() {
    }

    static ModelConfig read(ConfigReader config) {
        List<LayerType> types = pattern(config);
        config.requireActivation("silu", "mamba_hidden_act");
        config.requireActivation("relu2", "mlp_hidden_act");
        int hidden = config.requireInt("hidden_size");
        float eps = (float) config.getDouble(1e-5, "layer_norm_epsilon");

        int queryHeads = config.requireInt("num_attention_heads");
        int kvHeads = config.getInt(queryHeads, "num_key_value_heads");
        int headDim = config.getInt(128, "head_dim");
        int mambaHeads = config.getInt(128, "mamba_num_heads");
        int mambaHeadDim = config.getInt(64, "mamba_head_dim");
        int groups = config.getInt(8, "n_groups", "mamba_n_groups");
        MambaBlocks.checkDivides(config, mambaHeads, groups);
        int inner = mambaHeads * mambaHeadDim;
        float dtMin = (float) config.getDouble(0.001, "time_step_min");
        int ffn = config.requireInt("intermediate_size");
        boolean mlpBias = config.getBoolean(false, "mlp_bias");

        List<BlockSpec> blocks = new ArrayList<>();
        for (int i = 0; i < types.size(); i++) {
            String prefix = "backbone.layers." + i + ".mixer.";
            String norm = "backbone.layers." + i + ".norm.weight";
            blocks.add(switch (types.get(i)) {
                case MAMBA -> new BlockSpec.Mamba(i, prefix, norm, mambaHeads, mambaHeadDim, groups,
                        config.getInt(128, "ssm_state_size"), config.getInt(4, "conv_kernel", "mamba_d_conv"),
                        config.getInt(128, "chunk_size", "mamba_chunk_size"), config.getBoolean(true, "use_conv_bias"),
                        config.getBoolean(false, "use_bias"), dtMin, Float.POSITIVE_INFINITY, inner / groups, eps);
                case ATTENTION -> new BlockSpec.Attention(i, prefix, norm, queryHeads, kvHeads, headDim,
                        (float) (1.0 / Math.sqrt(headDim)), 0, 10000f, false);
                case MLP -> new BlockSpec.Mlp(i, prefix, norm, BlockSpec.MlpKind.SQUARED_RELU, ffn, mlpBias);
            });
        }
        boolean tied = config.getBoolean(false, "tie_word_embeddings");
        return new ModelConfig("NemotronHForCausalLM", config.requireInt("vocab_size"), hidden,
                config.getInt(0, "max_position_embeddings"), 1f, 1f, 1f, eps, "backbone.embeddings.weight",
                "backbone.norm_f.weight", tied ? null : "lm_head.weight", blocks);
    }

    /** layers_block_type (a list, 5.17) or hybrid_override_pattern (a string over M, *, -, E). */
    private static List<LayerType> pattern(ConfigReader config) {
        if (config.has("layers_block_type") && config.node("layers_block_type").isArray()) {
            return LayerType.parseAll(config.getStrings("layers_block_type"), config.file(), "layers_block_type");
        }
        String pattern = config.getString(null, "hybrid_override_pattern", "layers_block_type");
        if (pattern == null || pattern.isEmpty()) {
            throw new CheckpointException(config.file()
                    + ": neither 'layers_block_type' nor 'hybrid_override_pattern' is present; NemotronHForCausalLM needs one.");
        }
        List<String> characters = new ArrayList<>();
        for (char c : pattern.toCharArray()) {
            characters.add(String.valueOf(c));
        }
        return LayerType.parseAll(characters, config.file(), "hybrid_override_pattern");
    }
}
