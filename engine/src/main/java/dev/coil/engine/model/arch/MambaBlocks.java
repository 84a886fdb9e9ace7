package dev.coil.engine.model.arch;

import dev.coil.engine.load.CheckpointException;

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

    static void checkDivides(ConfigReader config, int heads, int groups) {
        if (groups <= 0 || heads % groups != 0) {
            throw new CheckpointException(config.file() + ": the Mamba head count " + heads
                    + " must be a multiple of the group count " + groups + ".");
        }
    }
}
