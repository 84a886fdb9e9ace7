package dev.coil.engine.model.arch;

import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.model.BlockSpec;

/** Shared reading of the Mamba-2 mixer's dimensions, which every family spells differently. */
final class MambaBlocks {

    private MambaBlocks() {
    }

    /** head dim "auto" (or absent) means expand · hidden / heads, as transformers derives it. */
    static int headDim(ConfigReader config, String key, int expand, int hidden, int heads) {
        if (!config.has(key) || config.node(key).isTextual()) {
            String text = config.has(key) ? config.node(key).asText() : "auto";
            if (!text.equals("auto")) {
                throw new CheckpointException(config.file() + ": key '" + key + "' must be an integer or \"auto\", found \""
                        + text + "\".");
            }
            return expand * hidden / heads;
        }
        return config.requireInt(key);
    }

    /**
     * The Mamba-2 mixer of the Bamba family (Bamba, GraniteMoeHybrid), from its "mamba_*" keys:
     * gated norm over the whole inner size with rms_norm_eps, dt clamped to time_step_limit.
     */
    static BlockSpec.Mamba bambaStyle(ConfigReader config, int layer, String prefix, String normName, int hidden,
            float eps) {
        int heads = config.getInt(128, "mamba_n_heads");
        int headDim = headDim(config, "mamba_d_head", config.getInt(2, "mamba_expand"), hidden, heads);
        int groups = config.getInt(1, "mamba_n_groups");
        checkDivides(config, heads, groups);
        float[] limit = config.timeStepLimit();
        return new BlockSpec.Mamba(layer, prefix, normName, heads, headDim, groups, config.getInt(256, "mamba_d_state"),
                config.getInt(4, "mamba_d_conv"), config.getInt(256, "mamba_chunk_size"),
                config.getBoolean(true, "mamba_conv_bias"), config.getBoolean(false, "mamba_proj_bias"), limit[0],
                limit[1], heads * headDim, eps);
    }

    static void checkDivides(ConfigReader config, int heads, int groups) {
        if (groups <= 0 || heads % groups != 0) {
            throw new CheckpointException(config.file() + ": the Mamba head count " + heads
                    + " must be a multiple of the group count " + groups + ".");
        }
    }
}
