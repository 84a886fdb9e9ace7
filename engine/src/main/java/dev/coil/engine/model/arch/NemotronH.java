package dev.coil.engine.model.arch;

import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * NemotronHForCausalLM: a pattern of blocks, M (Mamba-2), * (attention, NoPE), - (squared-ReLU MLP)
 * and E (routed squared-ReLU experts beside a shared one, chosen by sigmoid scores as DeepSeek-V3's
 * router chooses them, behind a latent projection when moe_latent_size is set), each its own
 * norm → mixer → residual. The Mamba inner size is
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
                case MOE -> new BlockSpec.Mlp(i, prefix + "shared_experts.", norm, BlockSpec.MlpKind.SQUARED_RELU,
                        config.requireInt("moe_shared_expert_intermediate_size"), mlpBias, routedExperts(config, prefix));
            });
        }
        boolean tied = config.getBoolean(false, "tie_word_embeddings");
        return new ModelConfig("NemotronHForCausalLM", config.requireInt("vocab_size"), hidden,
                config.getInt(0, "max_position_embeddings"), 1f, 1f, 1f, eps, "backbone.embeddings.weight",
                "backbone.norm_f.weight", tied ? null : "lm_head.weight", blocks);
    }

    /**
     * An E block's routed experts under {@code prefix}: n_routed_experts squared-ReLU experts of
     * moe_intermediate_size, num_experts_per_tok a token, chosen by the sigmoid router (n_group groups
     * of which topk_group are kept, norm_topk_prob, routed_scaling_factor), behind fc1_latent_proj and
     * fc2_latent_proj of moe_latent_size when that is not null. Values that cannot make them
     * (BlockSpec.Experts and BlockSpec.Router say why) fail with the keys named.
     */
    private static BlockSpec.Experts routedExperts(ConfigReader config, String prefix) {
        int experts = config.requireInt("n_routed_experts", "num_local_experts");
        int perToken = config.requireInt("num_experts_per_tok");
        int width = config.requireInt("moe_intermediate_size");
        int groups = config.getInt(1, "n_group");
        int groupsChosen = config.getInt(1, "topk_group");
        float scale = (float) config.getDouble(1.0, "routed_scaling_factor");
        boolean latentSet = config.has("moe_latent_size"); // absent or null: none
        int latent = latentSet ? config.requireInt("moe_latent_size") : 0;
        if (latentSet && latent < 1) {
            throw new CheckpointException(config.file() + ": moe_latent_size is " + latent
                    + "; it must be at least 1, or null for experts without a latent projection.");
        }
        try {
            return new BlockSpec.Experts(prefix, experts, perToken, width, BlockSpec.ExpertKind.SQUARED_RELU,
                    BlockSpec.Router.sigmoid(groups, groupsChosen, config.getBoolean(true, "norm_topk_prob"), scale),
                    latent);
        } catch (IllegalArgumentException e) {
            throw new CheckpointException(config.file() + ": n_routed_experts " + experts + ", num_experts_per_tok "
                    + perToken + ", moe_intermediate_size " + width + ", n_group " + groups + ", topk_group "
                    + groupsChosen + ", routed_scaling_factor " + scale + " do not make routed experts ("
                    + e.getMessage() + ").");
        }
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
