package dev.coil.engine.model.arch;

import dev.coil.engine.load.CheckpointException;
import java.util.ArrayList;
import java.util.List;

/** The kinds of layer a hybrid config lists, across the spellings transformers has used. */
enum LayerType {
    MAMBA,
    ATTENTION,
    MLP;

    /**
     * Normalises one entry: "mamba" / "linear_attention" / "M", "attention" / "full_attention" / "*",
     * "mlp" / "-". MoE entries ("moe", "E") fail: Coil serves dense models only.
     */
    static LayerType parse(String spelling, String file, String key) {
        return switch (spelling) {
            case "mamba", "linear_attention", "M" -> MAMBA;
            case "attention", "full_attention", "*" -> ATTENTION;
            case "mlp", "-" -> MLP;
            case "moe", "E" -> throw new CheckpointException(file + ": " + key + " has a mixture-of-experts layer ('"
                    + spelling + "'); Coil supports dense models only.");
            default -> throw new CheckpointException(file + ": " + key + " has an unknown layer type '" + spelling
                    + "'; Coil supports mamba/linear_attention (M), attention/full_attention (*) and mlp (-).");
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
