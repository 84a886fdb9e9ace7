package dev.coil.engine.load;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A Hugging Face model folder: config.json (required), the weights (see {@link Checkpoint}), and
 * the optional tokenizer.json, tokenizer_config.json, generation_config.json and
 * special_tokens_map.json.
 */
public record ModelFolder(Path directory) {

    public static final String CONFIG = "config.json";
    public static final String TOKENIZER = "tokenizer.json";
    public static final String TOKENIZER_CONFIG = "tokenizer_config.json";
    public static final String GENERATION_CONFIG = "generation_config.json";
    public static final String SPECIAL_TOKENS_MAP = "special_tokens_map.json";

    public static ModelFolder open(Path directory) {
        if (!Files.isDirectory(directory)) {
            throw new CheckpointException("Model folder " + directory
                    + (Files.exists(directory) ? " is not a directory." : " does not exist."));
        }
        if (!Files.isRegularFile(directory.resolve(CONFIG))) {
            throw new CheckpointException(directory + " has no " + CONFIG + "; a model folder holds " + CONFIG
                    + ", the weights (" + Checkpoint.SINGLE_FILE + " or " + Checkpoint.INDEX_FILE + ") and " + TOKENIZER + ".");
        }
        return new ModelFolder(directory);
    }

    public Path configFile() {
        return directory.resolve(CONFIG);
    }

    /** {@code fileName} inside the folder, when it exists. */
    public Optional<Path> file(String fileName) {
        Path path = directory.resolve(fileName);
        return Files.isRegularFile(path) ? Optional.of(path) : Optional.empty();
    }

    public Optional<Path> tokenizerFile() {
        return file(TOKENIZER);
    }

    public ObjectNode config() {
        return ConfigJson.read(configFile());
    }

    public Optional<ObjectNode> tokenizerConfig() {
        return file(TOKENIZER_CONFIG).map(ConfigJson::read);
    }

    public Optional<ObjectNode> specialTokensMap() {
        return file(SPECIAL_TOKENS_MAP).map(ConfigJson::read);
    }

    public Optional<ObjectNode> generationConfigJson() {
        return file(GENERATION_CONFIG).map(ConfigJson::read);
    }

    /** generation_config.json parsed, or {@link GenerationConfig#NONE} when the folder has none. */
    public GenerationConfig generationConfig() {
        return generationConfigJson().map(GenerationConfig::from).orElse(GenerationConfig.NONE);
    }

    /** Maps the weights; the caller closes the checkpoint. */
    public Checkpoint openCheckpoint() {
        return Checkpoint.open(directory);
    }

    public Checkpoint openCheckpoint(WeightStorage storage) {
        return Checkpoint.open(directory, storage);
    }
}
