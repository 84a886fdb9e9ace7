package dev.coil.engine.runner;

import dev.coil.engine.load.Checkpoint;
import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.load.GenerationConfig;
import dev.coil.engine.load.ModelFolder;
import dev.coil.engine.load.WeightStorage;
import dev.coil.engine.model.HybridModel;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.model.ModelLoader;
import dev.coil.engine.model.arch.Architecture;
import dev.coil.engine.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * A model folder opened for inference: the architecture read from config.json, the weights (mapped
 * or in memory), the tokenizer (when tokenizer.json is present) and the generation defaults. Everything
 * that can be wrong with the folder fails here, at load.
 */
public final class LoadedModel implements AutoCloseable {

    private final ModelFolder folder;
    private final Checkpoint checkpoint;
    private final HybridModel model;
    private final Tokenizer tokenizer;
    private final GenerationConfig generation;

    private LoadedModel(ModelFolder folder, Checkpoint checkpoint, HybridModel model, Tokenizer tokenizer,
            GenerationConfig generation) {
        this.folder = folder;
        this.checkpoint = checkpoint;
        this.model = model;
        this.tokenizer = tokenizer;
        this.generation = generation;
    }

    /** The folder with its weights memory-mapped ({@link WeightStorage#MAPPED}). */
    public static LoadedModel load(Path directory) {
        return load(directory, WeightStorage.MAPPED);
    }

    /** The folder with its weights where {@code storage} says ({@link Backends#weightStorage}). */
    public static LoadedModel load(Path directory, WeightStorage storage) {
        ModelFolder folder = ModelFolder.open(directory);
        ModelConfig config = Architecture.readConfig(folder.config(), folder.configFile().toString());
        Checkpoint checkpoint = folder.openCheckpoint(storage);
        try {
            HybridModel model = ModelLoader.build(config, checkpoint);
            Tokenizer tokenizer = null;
            if (folder.tokenizerFile().isPresent()) {
                tokenizer = Tokenizer.load(folder.tokenizerFile().get(), folder.tokenizerConfig().orElse(null));
                if (tokenizer.vocabSize() > config.vocabSize()) {
                    throw new CheckpointException(folder.tokenizerFile().get() + " has " + tokenizer.vocabSize()
                            + " tokens but config.json's vocab_size is " + config.vocabSize() + ".");
                }
            }
            return new LoadedModel(folder, checkpoint, model, tokenizer, folder.generationConfig());
        } catch (IOException e) {
            checkpoint.close();
            throw new CheckpointException("Could not read the tokenizer of " + directory + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            checkpoint.close();
            throw e;
        }
    }

    public HybridModel model() {
        return model;
    }

    public ModelConfig config() {
        return model.config();
    }

    public Path directory() {
        return folder.directory();
    }

    public Checkpoint checkpoint() {
        return checkpoint;
    }

    public GenerationConfig generationConfig() {
        return generation;
    }

    public boolean hasTokenizer() {
        return tokenizer != null;
    }

    /** The tokenizer; fails with a clear message when the folder has no tokenizer.json. */
    public Tokenizer tokenizer() {
        if (tokenizer == null) {
            throw new IllegalStateException(folder.directory() + " has no tokenizer.json; give the prompt as token ids");
        }
        return tokenizer;
    }

    /** Text → ids as transformers' tokenizer(text) does by default (special tokens per tokenizer.json). */
    public int[] encode(String text) {
        return tokenizer().encode(text, true);
    }

    /**
     * How many tokens one request may generate after a prompt of {@code promptTokens}: max_tokens,
     * refused when the prompt plus it exceeds the context window; without a limit
     * ({@link SamplingParams#UNLIMITED_TOKENS}), what the window leaves, refused when that is
     * nothing. A prompt that fills the window exactly fits with max_tokens 0: scoring it needs the
     * logits of its own positions only.
     *
     * @throws IllegalArgumentException naming max_tokens or the prompt, when they do not fit
     */
    public int generationLimit(int promptTokens, int maxTokens) {
        return generationLimit(promptTokens, maxTokens, config().contextLength(), "the model's context window");
    }

    /** As {@link #generationLimit(int, int)} within {@code window} tokens (0: none), which messages call {@code name}. */
    public int generationLimit(int promptTokens, int maxTokens, int window, String name) {
        if (window > 0 && promptTokens > window) {
            throw new IllegalArgumentException("the prompt (" + promptTokens + " tokens) does not fit " + name
                    + " of " + window + " tokens");
        }
        if (maxTokens == SamplingParams.UNLIMITED_TOKENS) {
            if (window > 0 && promptTokens == window) {
                throw new IllegalArgumentException("the prompt (" + promptTokens + " tokens) fills " + name + " of "
                        + window + " tokens and leaves no room to generate (max_tokens 0 scores it)");
            }
            return window > 0 ? window - promptTokens : maxTokens;
        }
        if (window > 0 && (long) promptTokens + maxTokens > window) {
            throw new IllegalArgumentException("max_tokens: the prompt (" + promptTokens + " tokens) plus max_tokens ("
                    + maxTokens + ") exceeds " + name + " of " + window + " tokens");
        }
        return maxTokens;
    }

    /** Token ids that end a generation: generation_config.json's eos_token_id, else the tokenizer's eos token. */
    public Set<Integer> endOfSequenceIds() {
        Set<Integer> ids = new LinkedHashSet<>(generation.eosTokenIds());
        if (ids.isEmpty() && tokenizer != null) {
            tokenizer.eosTokenId().ifPresent(ids::add);
        }
        return ids;
    }

    @Override
    public void close() {
        if (tokenizer != null) {
            tokenizer.close();
        }
        checkpoint.close();
    }
}
