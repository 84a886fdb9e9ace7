package dev.coil.engine.model.arch;

import dev.coil.engine.load.CheckpointException;
import java.util.ArrayList;
import java.util.List;

/** The kinds of layer a hybrid config lists, across the spellings transformers has used. */
enum LayerType {
    MAMBA,
    ATTENTION,
    MLP,
    MOE;

    /**
     * Normalises one entry: "mamba" / "linear_attention" / "M", "attention" / "full_attention" / "*",
     * "mlp" / "-", "moe" / "E" (routed experts beside a shared one).
     */
    static LayerType parse(String spelling, String file, String key) {
        return switch (spelling) {
            case "mamba", "linear_attention", "M" -> MAMBA;
            case "attention", "full_attention", "*" -> ATTENTION;
            case "mlp", "-" -> MLP;
            case "moe", "E" -> MOE;
            default -> throw new CheckpointException(file + ": " + key + " has an unknown layer type '" + spelling
                    + "'; Coil supports mamba/linear_attention (M), attention/full_attention (*) and mlp (-) and moe (E).");
        };
    }

    static List<LayerType> parseAll(List<String> spellings, String file, String key) {
        List<LayerType> types = new ArrayList<>();
        for (String spelling : spellings) {
            types.add(parse(spelling, file, key));
        }
        return types;
    }
}
