package dev.coil.engine.model.arch;

import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * Mamba2ForCausalLM: every layer is norm → Mamba-2 mixer → residual. Gated norm over the whole
 * inner size (HF's MambaRMSNormGated ignores n_groups); dt clamped to time_step_limit in prefill.
 */
final class Mamba2 {

    private Mamba2() {
    }

    static ModelConfig read(ConfigReader config) {
        config.requireActivation("silu", "hidden_act");
        int hidden = config.requireInt("hidden_size", "d_model");
        int layers = config.requireInt("num_hidden_layers", "n_layer");
        int heads = config.requireInt("num_heads");
        int headDim = config.getInt(64, "head_dim");
        int expand = config.getInt(2, "expand");
        if (hidden * expand != heads * headDim) {
            throw new CheckpointException(config.file() + ": hidden_size · expand (" + hidden * expand
                    + ") must equal num_heads · head_dim (" + heads * headDim + ").");
        }
        int groups = config.getInt(8, "n_groups");
        MambaBlocks.checkDivides(config, heads, groups);
        float eps = (float) config.getDouble(1e-5, "layer_norm_epsilon");
        float[] limit = config.timeStepLimit();
        boolean tied = config.getBoolean(false, "tie_word_embeddings");

        List<BlockSpec> blocks = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            String layer = "backbone.layers." + i + ".";
            blocks.add(new BlockSpec.Mamba(i, layer + "mixer.", layer + "norm.weight", heads, headDim, groups,
                    config.getInt(128, "state_size"), config.getInt(4, "conv_kernel"), config.getInt(256, "chunk_size"),
                    config.getBoolean(true, "use_conv_bias"), config.getBoolean(false, "use_bias"), limit[0], limit[1],
                    heads * headDim, eps));
        }
        return new ModelConfig("Mamba2ForCausalLM", config.requireInt("vocab_size"), hidden,
                config.getInt(0, "max_position_embeddings"), 1f, 1f, 1f, eps, "backbone.embeddings.weight",
                "backbone.norm_f.weight", tied ? null : "lm_head.weight", blocks);
    }
}
