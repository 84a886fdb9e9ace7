package dev.coil.engine.model.arch;

import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * BambaForCausalLM: each layer is a mixer block (Mamba-2, or attention at attn_layer_indices with
 * partial RoPE, factor 0.5 unless the config says otherwise) then a gated-SiLU MLP block. No multipliers.
 */
final class Bamba {

    private Bamba() {
    }

    static ModelConfig read(ConfigReader config) {
        config.requireActivation("silu", "hidden_act");
        int hidden = config.requireInt("hidden_size");
        int layers = config.requireInt("num_hidden_layers");
        List<Integer> attentionLayers = config.getInts("attn_layer_indices");
        float eps = (float) config.getDouble(1e-5, "rms_norm_eps");

        int queryHeads = config.requireInt("num_attention_heads");
        int kvHeads = config.getInt(queryHeads, "num_key_value_heads");
        int headDim = config.getInt(hidden / queryHeads, "head_dim");
        int rotaryDim = (int) (headDim * config.partialRotaryFactor(0.5));
        float theta = (float) config.ropeTheta();
        boolean attentionBias = config.getBoolean(false, "attention_bias");

        int ffn = config.requireInt("intermediate_size");
        boolean mlpBias = config.getBoolean(false, "mlp_bias");

        List<BlockSpec> blocks = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            String layer = "model.layers." + i + ".";
            String norm = layer + "input_layernorm.weight";
            if (attentionLayers != null && attentionLayers.contains(i)) {
                blocks.add(new BlockSpec.Attention(i, layer + "self_attn.", norm, queryHeads, kvHeads, headDim,
                        (float) (1.0 / Math.sqrt(headDim)), rotaryDim, theta, attentionBias));
            } else {
                blocks.add(MambaBlocks.bambaStyle(config, i, layer + "mamba.", norm, hidden, eps));
            }
            blocks.add(new BlockSpec.Mlp(i, layer + "feed_forward.", layer + "pre_ff_layernorm.weight",
                    BlockSpec.MlpKind.GATED_SILU, ffn, mlpBias));
        }
        boolean tied = config.getBoolean(false, "tie_word_embeddings");
        return new ModelConfig("BambaForCausalLM", config.requireInt("vocab_size"), hidden,
                config.getInt(0, "max_position_embeddings"), 1f, 1f, 1f, eps, "model.embed_tokens.weight",
                "model.final_layernorm.weight", tied ? null : "lm_head.weight", blocks);
    }
}
