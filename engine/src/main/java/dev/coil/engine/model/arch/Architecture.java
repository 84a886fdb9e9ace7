package dev.coil.engine.model.arch;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.model.ModelConfig;
import java.util.List;

/**
 * The supported checkpoint families. Each one reads its config.json into a {@link ModelConfig}
 * whose blocks name the tensors to load; the forward pass is shared.
 */
public enum Architecture {
    MAMBA2("Mamba2ForCausalLM", "mamba2") {
        @Override
        ModelConfig read(ConfigReader config) {
            return Mamba2.read(config);
        }
    },
    GRANITE_MOE_HYBRID("GraniteMoeHybridForCausalLM", "granitemoehybrid") {
        @Override
        ModelConfig read(ConfigReader config) {
            return GraniteMoeHybrid.read(config);
        }
    },
    BAMBA("BambaForCausalLM", "bamba") {
        @Override
        ModelConfig read(ConfigReader config) {
            return Bamba.read(config);
        }
    },
    NEMOTRON_H("NemotronHForCausalLM", "nemotron_h") {
        @Override
        ModelConfig read(ConfigReader config) {
            return NemotronH.read(config);
        }
    };

    private final String className;
    private final String modelType;

    Architecture(String className, String modelType) {
        this.className = className;
        this.modelType = modelType;
    }

    public String className() {
        return className;
    }

    abstract ModelConfig read(ConfigReader config);

    /** Picks the architecture from "architectures" (else "model_type") and reads the config. */
    public static ModelConfig readConfig(JsonNode config, String file) {
        ConfigReader reader = new ConfigReader(config, file);
        List<String> classes = reader.getStrings("architectures");
        String modelType = reader.getString(null, "model_type");
        for (Architecture architecture : values()) {
            boolean byClass = classes != null && classes.contains(architecture.className);
            boolean byType = (classes == null || classes.isEmpty()) && architecture.modelType.equals(modelType);
            if (byClass || byType) {
                return architecture.read(reader);
            }
        }
        String found = classes != null && !classes.isEmpty() ? "architectures " + classes : "model_type '" + modelType + "'";
        throw new CheckpointException(file + ": " + found + " is not supported. Coil supports "
                + supportedNames() + ".");
    }

    static String supportedNames() {
        StringBuilder names = new StringBuilder();
        Architecture[] all = values();
        for (int i = 0; i < all.length; i++) {
            names.append(i == 0 ? "" : i == all.length - 1 ? " and " : ", ").append(all[i].className);
        }
        return names.toString();
    }
}
