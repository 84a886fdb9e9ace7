package dev.coil.server;

import dev.coil.engine.load.WeightStorage;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.runner.Backend;
import dev.coil.engine.runner.CpuBackend;
import dev.coil.engine.runner.Engine;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.tokenizer.ChatTemplate;
import dev.coil.engine.tokenizer.StreamingDecoder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.function.Function;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The model the server answers with: its running engine, the name clients see, its chat template
 * (null for a base model without one) and the text of single tokens for logprobs. Thread-safe.
 */
public final class ServedModel implements AutoCloseable {

    private final Engine engine;
    /** The model's id, then the other names it answers to. */
    private volatile List<String> names;
    private final ChatTemplate chatTemplate;
    private final SamplingDefaults samplingDefaults;
    private final long created = Instant.now().getEpochSecond();
    private final Map<Integer, String> tokenTexts = new ConcurrentHashMap<>();
    private boolean engineStopped;
    private boolean closed;

    public ServedModel(Engine engine, String name, ChatTemplate chatTemplate) {
        this(engine, name, chatTemplate, SamplingDefaults.NEUTRAL);
    }

    /** @param samplingDefaults the sampling values a request gets for the fields it leaves out */
    public ServedModel(Engine engine, String name, ChatTemplate chatTemplate, SamplingDefaults samplingDefaults) {
        this.engine = engine;
        this.names = List.of(name);
        this.chatTemplate = chatTemplate;
        this.samplingDefaults = samplingDefaults;
    }

    /** The sampling values a request gets for the fields it leaves out: temperature, top_p, top_k, min_p, repetition_penalty. */
    public SamplingDefaults samplingDefaults() {
        return samplingDefaults;
    }

    /**
     * Opens a model folder and starts its engine.
     *
     * @param name the model id clients see; null names it after the folder
     */
    public static ServedModel load(Path folder, String name, Ops ops, EngineOptions options) {
        return load(folder, name, loaded -> new CpuBackend(loaded.model(), ops), options);
    }

    /** As above, with the steps on the backend {@code backend} opens for the loaded model. */
    public static ServedModel load(Path folder, String name, Function<LoadedModel, Backend> backend,
            EngineOptions options) {
        return load(folder, name, backend, loaded -> ContextParallelism.NONE, options);
    }

    /**
     * As above, with the requests that {@code parallelism} (opened for the loaded model) picks run
     * with their context sharded over its devices.
     */
    public static ServedModel load(Path folder, String name, Function<LoadedModel, Backend> backend,
            Function<LoadedModel, ContextParallelism> parallelism, EngineOptions options) {
        return load(folder, name, backend, parallelism, options, null);
    }

    /**
     * As above, with {@code chatTemplate} (a server's --chat-template: the template's text and where it
     * came from) in place of the folder's; null for the folder's.
     *
     * @throws IllegalArgumentException when a chat template is given for a model without a tokenizer
     */
    public static ServedModel load(Path folder, String name, Function<LoadedModel, Backend> backend,
            Function<LoadedModel, ContextParallelism> parallelism, EngineOptions options,
            ChatTemplateText chatTemplate) {
        return load(folder, name, backend, parallelism, options, chatTemplate, true);
    }

    /**
     * As above; with {@code modelSamplingDefaults} (vLLM's {@code --generation-config auto}), a request's
     * left-out sampling fields get the values the folder's generation_config.json gives, else the
     * neutral ones ({@code --generation-config vllm}).
     */
    public static ServedModel load(Path folder, String name, Function<LoadedModel, Backend> backend,
            Function<LoadedModel, ContextParallelism> parallelism, EngineOptions options,
            ChatTemplateText chatTemplate, boolean modelSamplingDefaults) {
        return load(folder, WeightStorage.MAPPED, name, backend, parallelism, options, chatTemplate,
                modelSamplingDefaults);
    }

    /** As above, the weights kept where {@code storage} says ({@code Backends.weightStorage}). */
    public static ServedModel load(Path folder, WeightStorage storage, String name,
            Function<LoadedModel, Backend> backend, Function<LoadedModel, ContextParallelism> parallelism,
            EngineOptions options, ChatTemplateText chatTemplate, boolean modelSamplingDefaults) {
        LoadedModel loaded = LoadedModel.load(folder, storage);
        try {
            if (chatTemplate != null && !loaded.hasTokenizer()) {
                throw new IllegalArgumentException("--chat-template: " + folder + " has no tokenizer.json, so its "
                        + "prompts are token ids and a chat template has nothing to render for");
            }
            ChatTemplate template = !loaded.hasTokenizer() ? null
                    : chatTemplate != null ? chatTemplateOf(folder, chatTemplate) : chatTemplateOf(folder);
            ContextParallelism sharding = parallelism.apply(loaded);
            Backend steps;
            try {
                steps = backend.apply(loaded);
            } catch (RuntimeException e) {
                if (sharding.model() != null) {
                    sharding.model().close();
                }
                throw e;
            }
            Engine engine = Engine.start(loaded, steps, options, sharding);
            Path fileName = folder.toAbsolutePath().normalize().getFileName();
            return new ServedModel(engine, name != null ? name : fileName == null ? "coil" : fileName.toString(),
                    template, modelSamplingDefaults ? SamplingDefaults.of(loaded.generationConfig())
                            : SamplingDefaults.NEUTRAL);
        } catch (RuntimeException e) {
            loaded.close();
            throw e;
        }
    }

    /** A chat template given apart from the model: its text, and where it came from (for messages). */
    public record ChatTemplateText(String text, String source) {
    }

    private static ChatTemplate chatTemplateOf(Path folder, ChatTemplateText given) {
        try {
            return ChatTemplate.forModel(folder, given.text(), given.source());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static ChatTemplate chatTemplateOf(Path folder) {
        try {
            return ChatTemplate.load(folder);
        } catch (IllegalArgumentException noTemplate) {
            return null;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public Engine engine() {
        return engine;
    }

    public String name() {
        return names.getFirst();
    }

    /** The model's id and the other names it answers to, in that order (vLLM's several served names). */
    public List<String> names() {
        return names;
    }

    /**
     * Lets the model answer to {@code aliases} too (the second and later --served-model-name): listed in
     * /v1/models and found by GET /v1/models/{name}; responses name the model by its id. Set before serving.
     */
    public void alsoAnswersTo(List<String> aliases) {
        List<String> all = new java.util.ArrayList<>(List.of(name()));
        aliases.stream().filter(alias -> !all.contains(alias)).forEach(all::add);
        names = List.copyOf(all);
    }

    /** The chat template, or null when the folder has none. */
    public ChatTemplate chatTemplate() {
        return chatTemplate;
    }

    /** When the model was loaded, in seconds since the epoch (the "created" of /v1/models). */
    public long created() {
        return created;
    }

    public int contextLength() {
        return engine.contextLength();
    }

    public int vocabSize() {
        return engine.model().config().vocabSize();
    }

    public boolean hasTokenizer() {
        return engine.model().hasTokenizer();
    }

    public int[] encode(String text, boolean addSpecialTokens) {
        return engine.model().tokenizer().encode(text, addSpecialTokens);
    }

    public String decode(int[] ids, boolean skipSpecialTokens) {
        return engine.model().tokenizer().decode(ids, skipSpecialTokens);
    }

    /** A decoder of one sequence's tokens into text, token by token (needs a tokenizer). */
    public StreamingDecoder streamingDecoder(boolean skipSpecialTokens) {
        return new StreamingDecoder(engine.model().tokenizer(), skipSpecialTokens);
    }

    /**
     * One token's text as logprobs show it: the text it adds after other text, as in a generated text
     * (a SentencePiece token "▁the" is " the", where decoding it alone drops the space). A token
     * holding part of a character shows as its decoding alone (U+FFFD; its bytes are in
     * {@link #tokenBytes}). Special tokens keep their spelling; without a tokenizer it is "token_id:ID",
     * as vLLM spells token ids.
     */
    public String tokenText(int id) {
        if (!hasTokenizer()) {
            return "token_id:" + id;
        }
        return tokenTexts.computeIfAbsent(id, engine.model().tokenizer()::tokenText);
    }

    /**
     * The bytes token {@code id} adds to a text, as chat logprobs' {@code bytes} give them: a token
     * holding part of a character's UTF-8 gives those bytes, which its text cannot show. Where the
     * tokenizer does not tell them, the UTF-8 of {@link #tokenText}.
     */
    public byte[] tokenBytes(int id) {
        byte[] bytes = hasTokenizer() ? engine.model().tokenizer().tokenBytes(id) : null;
        return bytes != null ? bytes : tokenText(id).getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Stops the engine: no new requests, those in flight get {@code timeout} to finish, the rest are
     * cancelled.
     */
    public synchronized void stopEngine(Duration timeout) {
        if (!engineStopped) {
            engineStopped = true;
            engine.shutdown(timeout);
        }
    }

    /** Stops the engine if still running and releases the model (weights, tokenizer). */
    @Override
    public synchronized void close() {
        stopEngine(Duration.ZERO);
        if (!closed) {
            closed = true;
            engine.model().close();
        }
    }
}
