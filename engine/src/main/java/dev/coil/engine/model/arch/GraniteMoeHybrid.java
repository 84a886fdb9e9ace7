package dev.coil.engine.model.arch;

import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * GraniteMoeHybridForCausalLM: dense (num_local_experts 0: granite-4.0-h-350m, -1b, -micro) or with
 * routed experts beside the shared MLP (granite-4.0-h-tiny, -small). Each layer is two residual
 * blocks, mixer (Mamba-2 or attention) then the shared MLP with its experts, both scaled by
 * residual_multiplier; embeddings × embedding_multiplier, logits ÷ logits_scaling, attention
 * scaled by attention_multiplier, no positional encoding unless position_embedding_type is "rope".
 */
final class GraniteMoeHybrid {

    private GraniteMoeHybrid() {
    }

    static ModelConfig read(ConfigReader config) {
        int experts = config.getInt(8, "num_local_experts");
        int expertsPerToken = config.getInt(2, "num_experts_per_tok");
        if (experts < 0 || (experts > 0 && (expertsPerToken < 1 || expertsPerToken > experts))) {
            throw new CheckpointException(config.file() + ": num_local_experts is " + experts
                    + " and num_experts_per_tok is " + expertsPerToken
                    + "; a mixture of experts needs 1 <= num_experts_per_tok <= num_local_experts.");
        }
        config.requireActivation("silu", "hidden_act");
        int hidden = config.requireInt("hidden_size");
        int layers = config.requireInt("num_hidden_layers");
        List<String> spellings = config.getStrings("layer_types");
        if (spellings == null) {
            throw new CheckpointException(config.file() + ": key 'layer_types' is missing; GraniteMoeHybridForCausalLM needs it to place the attention layers.");
        }
        if (spellings.size() != layers) {
            throw new CheckpointException(config.file() + ": layer_types has " + spellings.size()
                    + " entries but num_hidden_layers is " + layers + ".");
        }
        List<LayerType> types = LayerType.parseAll(spellings, config.file(), "layer_types");
        float eps = (float) config.getDouble(1e-6, "rms_norm_eps");

        int queryHeads = config.requireInt("num_attention_heads");
        int kvHeads = config.getInt(queryHeads, "num_key_value_heads");
        int headDim = config.getInt(hidden / queryHeads, "head_dim");
        String positions = config.getString("nope", "position_embedding_type");
        int rotaryDim = positions.equals("rope") ? (int) (headDim * config.partialRotaryFactor(1.0)) : 0;
        float theta = (float) config.ropeTheta();
        float attentionScale = (float) config.getDouble(1.0, "attention_multiplier");
        boolean attentionBias = config.getBoolean(false, "attention_bias");

        int ffn = config.requireInt("shared_intermediate_size");
        int expertWidth = experts > 0 ? config.requireInt("intermediate_size") : 0;

        List<BlockSpec> blocks = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            String layer = "model.layers." + i + ".";
            String norm = layer + "input_layernorm.weight";
            if (types.get(i) == LayerType.MAMBA) {
                blocks.add(MambaBlocks.bambaStyle(config, i, layer + "mamba.", norm, hidden, eps));
            } else if (types.get(i) == LayerType.ATTENTION) {
                blocks.add(new BlockSpec.Attention(i, layer + "self_attn.", norm, queryHeads, kvHeads, headDim,
                        attentionScale, rotaryDim, theta, attentionBias));
            } else {
                throw new CheckpointException(config.file() + ": layer_types[" + i + "] is '" + spellings.get(i)
                        + "'; GraniteMoeHybridForCausalLM layers are mamba or attention.");
            }
            BlockSpec.Experts routed = experts == 0 ? null
                    : new BlockSpec.Experts(layer + "block_sparse_moe.", experts, expertsPerToken, expertWidth);
            blocks.add(new BlockSpec.Mlp(i, layer + "shared_mlp.", layer + "post_attention_layernorm.weight",
                    BlockSpec.MlpKind.GATED_SILU_FUSED, ffn, false, routed));
        }
        boolean tied = config.getBoolean(false, "tie_word_embeddings");
        return new ModelConfig("GraniteMoeHybridForCausalLM", config.requireInt("vocab_size"), hidden,
                config.getInt(0, "max_position_embeddings"), (float) config.getDouble(1.0, "embedding_multiplier"),
                (float) config.getDouble(1.0, "residual_multiplier"), (float) config.getDouble(1.0, "logits_scaling"),
                eps, "model.embed_tokens.weight", "model.norm.weight", tied ? null : "lm_head.weight", blocks);
    }
}
