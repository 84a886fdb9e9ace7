package dev.coil.server.cli;

import dev.coil.engine.load.DType;
import dev.coil.engine.parallel.ContextParallelMode;
import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.parallel.ShardLayout;
import dev.coil.engine.parallel.ShardedModels;
import dev.coil.engine.runner.Backends;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.ScanPrecision;
import dev.coil.server.ServedModel;
import dev.coil.server.api.ReasoningFormat;
import dev.coil.server.api.ToolCallFormat;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;
import picocli.CommandLine;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * The flags that make a served model and shape its answers, shared by {@code serve} and
 * {@code run-batch}: the model and its devices, the engine's cache and step sizes, the chat template,
 * the tool-call and reasoning parsers, the sampling defaults, the stored responses. The engine flags'
 * defaults come from {@link EngineDefaults}, which the commands name as their default value provider.
 */
final class ServingOptions {

    /**
     * The CPU's warm-up requests for a model of {@code parameters}, {prompt tokens, tokens decoded after
     * it}: a prompt that takes the many-row products, then one as short as a chat turn's, which takes
     * the few-row ones. Without them the first completion after start (6 prompt tokens, 32 generated)
     * took 2.1-2.6 s on the demo model (11M parameters), the ones after it 0.23-0.5 s (2-core machine,
     * docs/performance.md): the JIT still compiling. A larger model runs its loops longer in each step,
     * so fewer steps compile them, and each step costs more: the counts shrink with its size, to 8 and 4.
     */
    static int[][] cpuWarmUps(long parameters) {
        double scale = Math.min(1, 20e6 / Math.max(1, parameters));
        int prompt = (int) Math.max(8, Math.round(64 * scale));
        int decode = (int) Math.max(4, Math.round(64 * scale));
        return new int[][] {{prompt, decode}, {6, Math.min(8, decode)}};
    }

    @Mixin
    ModelOptions modelOptions;

    @Mixin
    ContextParallelOptions contextParallelOptions;

    @Option(names = "--served-model-name", paramLabel = "NAME",
            description = "The model id clients see in /v1/models and responses (default: the Hub model's name that"
                    + " --model gives, else the model folder's name). Repeated, more names the model answers to,"
                    + " each listed in /v1/models (vLLM takes them after one flag); responses name the first.")
    List<String> servedModelNames;

    @Option(names = "--response-store", paramLabel = "SIZE", defaultValue = "64M",
            description = "The Responses API's stored responses (GET /v1/responses/ID, previous_response_id), held "
                    + "in memory as JSON text up to this size: bytes, or K, M, G; and apart from them, as much of its "
                    + "conversations (/v1/conversations); the least recently used go first; 0 stores none (default "
                    + "${DEFAULT-VALUE}).")
    String responseStore;

    @Option(names = "--tool-call-parser", paramLabel = "NAME",
            description = "The served model's own format of tool calls: hermes (a JSON call between <tool_call> "
                    + "tags, as Granite 4.0 and Qwen 2.5 write them), nemotron_json (a JSON array of calls between "
                    + "<TOOLCALL> tags, Nemotron Nano 2's) or qwen3_coder (<function=NAME> and <parameter=KEY> tags "
                    + "between <tool_call> tags, Qwen3-Coder's and Nemotron 3 Nano's). With it, tool_choice \"auto\", the default when a chat "
                    + "request gives tools, answers freely and the calls the model writes come back as tool_calls; "
                    + "without it \"auto\" is refused (default: none).")
    String toolCallParser;

    @Option(names = "--enable-auto-tool-choice",
            description = "vLLM's flag, accepted for its command lines: tool_choice \"auto\" is on whenever "
                    + "--tool-call-parser is given, which this flag needs.")
    boolean enableAutoToolChoice;

    @Option(names = "--chat-template", paramLabel = "FILE_OR_TEMPLATE",
            description = "The chat template to render chat requests with instead of the model's: a Jinja file, "
                    + "or the template itself (text with '{'), as vLLM's flag takes it; the model's special tokens "
                    + "still come from its tokenizer_config.json (default: the model folder's template).")
    String chatTemplate;

    @Option(names = "--reasoning-parser", paramLabel = "NAME",
            description = "Split the served model's reasoning, a <think> block (deepseek_r1, qwen3, nemotron_v3 or "
                    + "nano_v3, vLLM's names; DeepSeek R1, Qwen 3, Nemotron Nano 2 and Nemotron 3 write it), off its "
                    + "chat answers: it comes back as "
                    + "reasoning (and reasoning_content), the rest as content (default: none).")
    String reasoningParser;

    @Option(names = "--generation-config", paramLabel = "auto|vllm", defaultValue = "auto",
            description = "Where the sampling values a request leaves out come from, as vLLM's flag: auto, the model "
                    + "folder's generation_config.json (temperature, top_p, top_k, min_p, repetition_penalty, where it "
                    + "gives them); vllm, the neutral ones (temperature 1, top_p 1) (default: ${DEFAULT-VALUE}).")
    String generationConfig;

    @Option(names = "--block-size", paramLabel = "TOKENS", description = "Tokens per KV cache block (default ${DEFAULT-VALUE}).")
    int blockSize;

    @Option(names = "--kv-dtype", paramLabel = "TYPE", description = "Storage of cached keys and values: bf16 or f32 (default ${DEFAULT-VALUE}).")
    String kvDtype;

    @Option(names = "--cache-memory", paramLabel = "SIZE",
            description = "KV + state cache budget: bytes with K/M/G suffix (4G) or a fraction of free memory (0.3) (default ${DEFAULT-VALUE}).")
    String cacheMemory;

    @Option(names = {"--max-seqs", "--max-num-seqs"}, paramLabel = "N",
            description = "Requests in one engine step (default ${DEFAULT-VALUE}; --max-num-seqs is vLLM's name).")
    int maxSequences;

    @Option(names = {"--max-batched-tokens", "--max-num-batched-tokens"}, paramLabel = "N",
            description = "Tokens in one engine step, prompt chunks and decodes together (default 1024 on the CPU;"
                    + " on a GPU 8192, or 2048 on a card under 70 GiB; --max-num-batched-tokens is vLLM's name).")
    Integer maxBatchedTokens;

    @Option(names = "--max-model-len", paramLabel = "TOKENS",
            description = "vLLM's flag: the context window served, prompt and output together, at most the model's"
                    + " (default: the model's, config.json's max_position_embeddings). Longer requests get 400, and"
                    + " the cache is sized for this window.")
    Integer maxModelLength;

    @Option(names = "--max-waiting", paramLabel = "N",
            description = "Queued requests before new ones get 429 (default ${DEFAULT-VALUE}).")
    int maxWaiting;

    @Option(names = {"--prefix-caching", "--enable-prefix-caching"}, negatable = true, fallbackValue = "true",
            description = "Reuse cached KV blocks and Mamba states of earlier prompts (default ${DEFAULT-VALUE}; "
                    + "--no-prefix-caching, or vLLM's --no-enable-prefix-caching, turns it off).")
    boolean prefixCaching;

    @Option(names = "--snapshot-interval", paramLabel = "BLOCKS",
            description = "During prefill, snapshot Mamba state for the prefix cache at multiples of this many blocks, "
                    + "at most once a prompt chunk; 0: only at request end (default 16 on the CPU; on a GPU 1024"
                    + " positions' worth, 64 blocks of 16, since each snapshot costs a GPU a prompt step).")
    Integer snapshotInterval;

    @Option(names = "--scheduling-policy", paramLabel = "fcfs|priority", defaultValue = "fcfs",
            description = "How waiting requests are taken, as vLLM's flag: fcfs, first come first served; priority, "
                    + "by each request's priority (lower first; vLLM's request field), then arrival; a step out of "
                    + "cache blocks preempts the running request of the worst priority, and a waiting request one of a "
                    + "strictly worse priority (default ${DEFAULT-VALUE}).")
    String schedulingPolicy;

    @Option(names = "--batch-invariant", arity = "0..1", paramLabel = "BOOLEAN",
            description = "A request's tokens and logprobs do not depend, bit for bit, on the requests served beside"
                    + " it (as vLLM's VLLM_BATCH_INVARIANT=1; also COIL_BATCH_INVARIANT=1): every product (and on a"
                    + " GPU every attention) sums each row in one fixed order, prompts are cut into chunks by their own"
                    + " length alone, and the prefix cache is off. Slower (docs/performance.md).")
    boolean batchInvariant;

    /** --devices, resolved: auto becomes the GPU when one and the kernels are there, else the CPU. */
    Devices devices() {
        return Backends.resolve(modelOptions.devices());
    }

    /** The engine flags on the devices' own defaults (step tokens, snapshot spacing). */
    EngineOptions engineOptions(Devices devices) {
        return engineOptions(Backends.defaultMaxBatchedTokens(devices),
                Backends.defaultSnapshotIntervalBlocks(devices, blockSize));
    }

    /** How the model is to be loaded, every flag read (a bad one fails here, before anything starts). */
    record Loading(ServingOptions options, Devices devices, EngineOptions engineOptions,
            Function<LoadedModel, ContextParallelism> sharding, ServedModel.ChatTemplateText template,
            boolean modelSamplingDefaults) {

        /**
         * Loads the model, says on System.err where its left-out sampling values come from, and sends
         * throwaway requests, so that the first client does not pay for loading kernels and growing scratch
         * (a GPU) or for the JIT's first passes (the CPU).
         */
        ServedModel load() throws InterruptedException {
            int threads = options.modelOptions.threads();
            ScanPrecision precision = options.modelOptions.scanPrecision();
            ServedModel model = ServedModel.load(options.modelOptions.folder(),
                    options.modelOptions.weightStorage(devices), options.servedModelNames != null
                            ? options.servedModelNames.getFirst() : options.modelOptions.hubModel(),
                    loaded -> Backends.open(devices, loaded, threads, precision, engineOptions.batchInvariant()),
                    sharding, engineOptions, template, modelSamplingDefaults);
            if (options.servedModelNames != null) {
                model.alsoAnswersTo(options.servedModelNames);
            }
            if (!model.samplingDefaults().described().isEmpty()) {
                System.err.println("coil: requests that leave them out sample with the model's generation_config.json "
                        + "values: " + model.samplingDefaults().described() + " (--generation-config vllm for none)");
            }
            try {
                // On a GPU a long prompt (kernels loaded, scratch grown); on the CPU a short one, for the JIT.
                Duration warmUp = Duration.ZERO;
                if (devices.isCuda()) {
                    warmUp = model.engine().warmUp();
                } else {
                    for (int[] request : cpuWarmUps(model.engine().model().checkpoint().parameterCount())) {
                        warmUp = warmUp.plus(model.engine().warmUp(request[0], request[1]));
                    }
                }
                System.err.printf("coil: warmed up in %d ms%n", warmUp.toMillis());
            } catch (IllegalStateException | IllegalArgumentException e) {
                System.err.println("coil: warm-up skipped: " + e.getMessage());
            }
            return model;
        }
    }

    /** The model's loading on {@code devices} with {@code engineOptions}, every flag read. */
    Loading loading(Devices devices, EngineOptions engineOptions) throws IOException {
        return new Loading(this, devices, engineOptions, contextParallelism(devices), chatTemplate(),
                modelSamplingDefaults());
    }

    /**
     * What the engine shards, opened once the model is loaded: --context-parallel and --shard-layout
     * over the resolved --devices (a bad value fails here, before the server listens).
     */
    Function<LoadedModel, ContextParallelism> contextParallelism(Devices devices) {
        ContextParallelMode mode = contextParallelOptions.mode();
        ShardLayout layout = contextParallelOptions.layout();
        int threads = modelOptions.threads();
        ScanPrecision precision = modelOptions.scanPrecision();
        return loaded -> ShardedModels.contextParallelism(loaded, devices, threads, mode, layout, precision);
    }

    /** The engine flags, on the CPU's defaults. */
    EngineOptions engineOptions() {
        return engineOptions(EngineOptions.DEFAULTS.maxBatchedTokens());
    }

    /** The engine flags on {@code defaultStepTokens}, with the CPU's snapshot spacing. */
    EngineOptions engineOptions(int defaultStepTokens) {
        return engineOptions(defaultStepTokens, EngineOptions.DEFAULTS.snapshotIntervalBlocks());
    }

    /**
     * The engine flags; without --max-batched-tokens, {@code defaultStepTokens} (the devices'
     * default), raised to --max-seqs where that is more: every running request decodes each step;
     * without --snapshot-interval, {@code defaultSnapshotBlocks} (the devices' default).
     */
    EngineOptions engineOptions(int defaultStepTokens, int defaultSnapshotBlocks) {
        int stepTokens = maxBatchedTokens != null ? maxBatchedTokens : Math.max(defaultStepTokens, maxSequences);
        if (maxModelLength != null && maxModelLength <= 0) {
            throw new IllegalArgumentException("--max-model-len must be positive, got " + maxModelLength);
        }
        return new EngineOptions(blockSize, kvDtype(kvDtype), cacheMemory, maxSequences, stepTokens, maxWaiting,
                prefixCaching, snapshotInterval != null ? snapshotInterval : defaultSnapshotBlocks,
                maxModelLength == null ? 0 : maxModelLength, batchInvariant(System.getenv("COIL_BATCH_INVARIANT")),
                priorityScheduling());
    }

    /** --scheduling-policy: true for priority, false for fcfs. */
    boolean priorityScheduling() {
        return switch (schedulingPolicy) {
            case "fcfs" -> false;
            case "priority" -> true;
            default -> throw new IllegalArgumentException("--scheduling-policy must be fcfs or priority, got \""
                    + schedulingPolicy + "\"");
        };
    }

    /** --batch-invariant, or the environment's COIL_BATCH_INVARIANT set to 1 or true. */
    boolean batchInvariant(String environment) {
        return batchInvariant || environment != null
                && ("1".equals(environment.trim()) || "true".equalsIgnoreCase(environment.trim()));
    }

    /** --tool-call-parser's format, or null; --enable-auto-tool-choice without a parser is an error, as in vLLM. */
    ToolCallFormat toolCallFormat() {
        if (toolCallParser == null) {
            if (enableAutoToolChoice) {
                throw new IllegalArgumentException("--enable-auto-tool-choice needs --tool-call-parser (one of "
                        + ToolCallFormat.parserNames() + ")");
            }
            return null;
        }
        return ToolCallFormat.named(toolCallParser);
    }

    /**
     * --chat-template's template, or null: a file's text where the value names a file, else the value
     * itself where it holds '{' (a template written on the command line); anything else is a file that
     * is not there.
     */
    ServedModel.ChatTemplateText chatTemplate() throws IOException {
        if (chatTemplate == null) {
            return null;
        }
        Path file = fileNamed(chatTemplate);
        if (file != null && Files.isRegularFile(file)) {
            return new ServedModel.ChatTemplateText(Files.readString(file), file.toString());
        }
        if (chatTemplate.contains("{")) {
            return new ServedModel.ChatTemplateText(chatTemplate, "--chat-template");
        }
        throw new IllegalArgumentException("--chat-template: no file " + chatTemplate
                + " (give a Jinja file, or the template itself)");
    }

    private static Path fileNamed(String value) {
        try {
            return Path.of(value);
        } catch (java.nio.file.InvalidPathException notAPath) {
            return null;
        }
    }

    /** --reasoning-parser's format, or null. */
    ReasoningFormat reasoningFormat() {
        return reasoningParser == null ? null : ReasoningFormat.named(reasoningParser);
    }

    /** --generation-config: true for auto (the model's defaults), false for vllm (the neutral ones). */
    boolean modelSamplingDefaults() {
        return switch (generationConfig) {
            case "auto" -> true;
            case "vllm" -> false;
            default -> throw new IllegalArgumentException("--generation-config must be auto or vllm, got \""
                    + generationConfig + "\"");
        };
    }

    /** --response-store in bytes: a count, or one with a K, M or G suffix. */
    long responseStoreBytes() {
        String text = responseStore.trim().toUpperCase(Locale.ROOT);
        int shift = text.isEmpty() ? 0 : switch (text.charAt(text.length() - 1)) {
            case 'K' -> 10;
            case 'M' -> 20;
            case 'G' -> 30;
            default -> 0;
        };
        try {
            long value = Long.parseLong(shift == 0 ? text : text.substring(0, text.length() - 1));
            if (value >= 0 && value <= Long.MAX_VALUE >> shift) {
                return value << shift;
            }
        } catch (NumberFormatException e) {
            // the message below says what is taken
        }
        throw new IllegalArgumentException("--response-store must be a size such as 64M, 1G or 0, got \""
                + responseStore + "\"");
    }

    private static DType kvDtype(String spelling) {
        return switch (spelling.toLowerCase(Locale.ROOT)) {
            case "bf16" -> DType.BF16;
            case "f32" -> DType.F32;
            default -> throw new IllegalArgumentException("--kv-dtype must be bf16 or f32, got " + spelling);
        };
    }

    /** The engine flags' defaults, read from {@link EngineOptions#DEFAULTS} so that help shows the engine's own. */
    static final class EngineDefaults implements CommandLine.IDefaultValueProvider {
        /** vLLM's names of Coil's engine flags, accepted beside them. */
        private static final java.util.Set<String> VLLM_NAMES = java.util.Set.of("--max-num-seqs",
                "--max-num-batched-tokens", "--enable-prefix-caching");

        @Override
        public String defaultValue(CommandLine.Model.ArgSpec argument) {
            if (!(argument instanceof CommandLine.Model.OptionSpec option)) {
                return null;
            }
            EngineOptions defaults = EngineOptions.DEFAULTS;
            // Coil's name of the option, not the vLLM name beside it.
            String name = java.util.Arrays.stream(option.names()).filter(candidate -> !VLLM_NAMES.contains(candidate))
                    .findFirst().orElse(option.longestName());
            return switch (name) {
                case "--block-size" -> String.valueOf(defaults.blockSize());
                case "--kv-dtype" -> defaults.kvDtype().name().toLowerCase(Locale.ROOT);
                case "--cache-memory" -> defaults.cacheMemory();
                case "--max-seqs" -> String.valueOf(defaults.maxSequences());
                case "--max-waiting" -> String.valueOf(defaults.maxWaiting());
                case "--prefix-caching" -> String.valueOf(defaults.prefixCaching());
                default -> null;
            };
        }
    }
}
