package dev.coil.engine.runner;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.ServingCache;
import dev.coil.engine.model.HybridModel;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.sched.Scheduler;
import dev.coil.engine.tokenizer.StreamingDecoder;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The serving engine, the HTTP server's only way in: requests are submitted, run together by one
 * step thread (continuous batching at the iteration level), and report back through their
 * {@link RequestStream}. Thread-safe.
 *
 * <p>Given a sharded model ({@link ContextParallelism}), the requests it picks (all of them under
 * --context-parallel always; under auto those too long for one device) run instead in a lane of
 * their own ({@link ShardedLane}): one at a time, their context sharded over the devices, beside
 * the batched steps.
 */
public final class Engine implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(Engine.class);

    /** The longest prompt {@link #warmUp} sends (fewer tokens where the context window is shorter). */
    static final int WARM_UP_PROMPT = 8192;

    private final LoadedModel loaded;
    private final EngineOptions options;
    private final CacheSizing sizing;
    private final ServingCache cache;
    private final Backend backend;
    private final StepLoop loop;
    private final ContextParallelism parallelism;
    private final ShardedLane lane; // null without a sharded model
    private final Map<String, ActiveRequest> requests = new ConcurrentHashMap<>();
    private final AtomicLong nextId = new AtomicLong();
    private volatile boolean accepting = true;
    /** The vocabulary as grammars walk it, for requests held to one; made on the first such request. */
    private volatile TokenMasks tokenMasks;
    private final AtomicBoolean stopped = new AtomicBoolean();

    private Engine(LoadedModel loaded, Backend backend, EngineOptions options, ContextParallelism parallelism) {
        this.loaded = loaded;
        this.options = options;
        this.backend = backend;
        this.parallelism = parallelism;
        if (options.batchInvariant() != backend.batchInvariant()) {
            // Half the mode would leave a request's bits to its neighbours without saying so.
            throw new IllegalArgumentException(options.batchInvariant()
                    ? "batch-invariant options need a batch-invariant backend (Backends.open with batchInvariant),"
                            + " not " + backend.description()
                    : "a batch-invariant backend (" + backend.description() + ") needs batch-invariant options"
                            + " (EngineOptions.withBatchInvariant)");
        }
        HybridModel model = loaded.model();
        int modelWindow = model.config().contextLength();
        if (options.maxModelLength() > 0 && modelWindow > 0 && options.maxModelLength() > modelWindow) {
            throw new IllegalArgumentException("--max-model-len (" + options.maxModelLength() + ") exceeds the model's "
                    + "context window of " + modelWindow + " tokens (max_position_embeddings in config.json)");
        }
        long budget = CacheBudget.bytes(options.cacheMemory(), backend.freeMemoryBytes());
        this.sizing = CacheSizing.plan(budget, options.blockSize(), options.kvDtype(), options.maxSequences(),
                options.contextWindow(modelWindow), options.usesPrefixCache(), options.snapshotIntervalBlocks(),
                model.config().blocks(), model.newLayerStates());
        sizing.warnings().forEach(LOG::warn);
        this.cache = new ServingCache(sizing, model.config().blocks(), backend.newStateStore(sizing));
        int maxStepRows = Math.max(sizing.slots(), options.maxBatchedTokens());
        backend.prepare(maxStepRows);
        Scheduler scheduler = new Scheduler(sizing.slots(), maxStepRows, cache, options.batchInvariant(),
                options.priorityScheduling());
        this.loop = new StepLoop(model.config(), backend, cache, scheduler, options.maxWaiting());
        this.lane = parallelism.model() == null ? null
                : new ShardedLane(model.config(), parallelism, options.maxWaiting());
        LOG.info("{}: cache of {} MiB budget, {} KV blocks of {} tokens ({} KiB each, {}), {} state slots ({} KiB each)",
                backend.description(), budget >> 20, sizing.blocks(), sizing.blockSize(), sizing.blockBytes() >> 10, sizing.kvDtype(),
                sizing.slots(), sizing.slotBytes() >> 10);
        if (lane != null) {
            LOG.info("context parallelism: {}", parallelism);
        }
        if (options.batchInvariant()) {
            LOG.info("batch-invariant: prompts in chunks of {} tokens whatever shares a step, prefix cache off{}",
                    scheduler.invariantChunk(), lane != null ? " (requests run over several devices are not)" : "");
        }
    }

    ServingCache cache() {
        return cache;
    }

    /** How the cache budget was split (blocks, slots, snapshot bytes) and what was clamped. */
    public CacheSizing cacheSizing() {
        return sizing;
    }

    /** Sizes the cache from the options, starts the step thread; steps run on the CPU with {@code ops}. */
    public static Engine start(LoadedModel loaded, Ops ops, EngineOptions options) {
        return start(loaded, new CpuBackend(loaded.model(), ops), options);
    }

    /**
     * Sizes the cache from the options in the backend's memory, starts the step thread. The engine
     * owns the backend from here and closes it at shutdown.
     */
    public static Engine start(LoadedModel loaded, Backend backend, EngineOptions options) {
        return start(loaded, backend, options, ContextParallelism.NONE);
    }

    /** As {@link #start(LoadedModel, Ops, EngineOptions)}, with requests sharded as {@code parallelism} says. */
    public static Engine start(LoadedModel loaded, Ops ops, EngineOptions options, ContextParallelism parallelism) {
        return start(loaded, new CpuBackend(loaded.model(), ops), options, parallelism);
    }

    /**
     * As {@link #start(LoadedModel, Backend, EngineOptions)}, with the requests {@code parallelism}
     * picks run sharded over its model's devices. The engine owns the sharded model too and closes
     * it at shutdown.
     */
    public static Engine start(LoadedModel loaded, Backend backend, EngineOptions options,
            ContextParallelism parallelism) {
        Engine engine;
        try {
            engine = new Engine(loaded, backend, options, parallelism);
        } catch (RuntimeException e) {
            backend.close();
            if (parallelism.model() != null) {
                parallelism.model().close();
            }
            throw e;
        }
        engine.loop.start();
        if (engine.lane != null) {
            engine.lane.start();
        }
        return engine;
    }

    Backend backend() {
        return backend;
    }

    /** What runs the steps ("cpu, 2 threads", "cuda:0 (…)"). */
    public String backendDescription() {
        return backend.description();
    }

    public LoadedModel model() {
        return loaded;
    }

    public EngineOptions options() {
        return options;
    }

    /** Which requests run sharded, over which model ({@link ContextParallelism#NONE} when none do). */
    public ContextParallelism contextParallelism() {
        return parallelism;
    }

    /**
     * The context window served in tokens (prompt plus generated): --max-model-len where given, else
     * the model's, or 0 when the config names none.
     */
    public int contextLength() {
        return options.contextWindow(loaded.config().contextLength());
    }

    /** Refuses a token id outside [0, vocab), naming what holds it. */
    private static void requireInVocabulary(String what, int token, int vocab) {
        if (token < 0 || token >= vocab) {
            throw new IllegalArgumentException(what + " " + token + " is outside the vocabulary [0, " + vocab + ")");
        }
    }

    /**
     * Queues a request and returns its event stream.
     *
     * @throws IllegalArgumentException when the request cannot be served as asked (prompt or
     *                                  max_tokens past the context window, token ids outside the
     *                                  vocabulary, constraints that leave no first token); the
     *                                  message names the parameter
     * @throws EngineOverloadedException when the waiting queue is full
     * @throws IllegalStateException    when the engine is shutting down
     */
    public RequestStream submit(EngineRequest request) {
        if (!accepting) {
            throw new IllegalStateException("the engine is shutting down and accepts no new requests");
        }
        int maxTokens = loaded.generationLimit(request.promptLength(), request.sampling().maxTokens(), contextLength(),
                options.maxModelLength() > 0 ? "the served context window (--max-model-len)" : "the model's context window");
        if (request.priority() != 0 && !options.priorityScheduling()) {
            throw new IllegalArgumentException("priority: this engine schedules first come first served, where every "
                    + "request's priority is 0; start it with priority scheduling (--scheduling-policy priority)");
        }
        int vocab = loaded.config().vocabSize();
        for (int i = 0; i < request.promptLength(); i++) {
            requireInVocabulary("prompt token id", request.promptToken(i), vocab);
        }
        for (int token : request.sampling().stopTokenIds()) {
            requireInVocabulary("stop_token_ids: token id", token, vocab);
        }
        for (int token : request.sampling().logitBias().keySet()) {
            requireInVocabulary("logit_bias: token id", token, vocab);
        }
        OutputGrammar grammar = request.sampling().grammar();
        if (grammar != null && !loaded.hasTokenizer()) {
            throw new IllegalArgumentException("response_format: a grammar for the output needs the model's "
                    + "tokenizer.json");
        }
        String id = "req-" + nextId.incrementAndGet();
        RequestStream stream = new RequestStream(id, this);
        StreamingDecoder decoder = loaded.hasTokenizer() ? StreamingDecoder.answering(loaded.tokenizer(),
                request.promptTokens(), request.sampling().skipSpecialTokens()) : null;
        GrammarConstraint constraint = grammar == null ? null : new GrammarConstraint(grammar, tokenMasks());
        ThinkingBudgetState thinking = ThinkingBudgetState.of(request.sampling().thinkingBudget(),
                loaded.hasTokenizer() ? loaded.tokenizer() : null, grammar != null);
        ActiveRequest active = new ActiveRequest(id, request, maxTokens, loaded.endOfSequenceIds(), decoder, constraint,
                thinking, stream, requests::remove);
        String noToken = maxTokens > 0 ? active.noTokenLeft() : null;
        if (noToken != null) {
            throw new IllegalArgumentException(noToken);
        }
        boolean sharded = lane != null && shards(request.promptLength(), maxTokens);
        requests.put(id, active);
        if (!(sharded ? lane.enqueue(active) : loop.enqueue(active))) {
            requests.remove(id);
            throw new EngineOverloadedException("the server is overloaded: " + options.maxWaiting()
                    + " requests are already waiting; retry later");
        }
        return stream;
    }

    /** The vocabulary's tree and the allowed sets of grammar states, built on the first grammar request. */
    private TokenMasks tokenMasks() {
        TokenMasks masks = tokenMasks;
        if (masks == null) {
            synchronized (this) {
                if (tokenMasks == null) {
                    tokenMasks = new TokenMasks(VocabularyTrie.of(loaded.tokenizer(), loaded.config().vocabSize()));
                }
                masks = tokenMasks;
            }
        }
        return masks;
    }

    /**
     * Runs one throwaway request through the steps, so that the first real request does not pay for
     * what happens once: the backend's kernels loaded and its scratch grown, the JIT's first passes
     * over the step code. Its prompt takes at least two steps (a prompt chunk with cached positions
     * before it) and {@link #WARM_UP_PROMPT} tokens where the context window allows, so that prompts
     * up to that long find the attention's scratch grown; then a few tokens are decoded. Blocks
     * until it finished. The prompt is a fixed pattern; what it leaves in the prefix cache is kept
     * like any finished request's.
     *
     * @return how long it took
     */
    public Duration warmUp() throws InterruptedException {
        return warmUp(Math.max(options.maxBatchedTokens() + 16, WARM_UP_PROMPT), 4);
    }

    /**
     * {@link #warmUp()} with a prompt of {@code promptTokens} (fewer where the context window or the
     * cache is shorter) and {@code decodeTokens} tokens decoded after it: on the CPU a short one, so that
     * the JIT has compiled the step code's hot loops before the first client's request (which otherwise
     * takes about 2 s longer on the demo model) without a long prompt's minutes on a large model.
     *
     * @return how long it took
     */
    public Duration warmUp(int promptTokens, int decodeTokens) throws InterruptedException {
        int vocab = loaded.config().vocabSize();
        int length = promptTokens;
        if (contextLength() > 0) {
            length = Math.min(length, contextLength() - decodeTokens - 4);
        }
        // What the cache holds:
        length = (int) Math.min(length, (long) sizing.blocks() * sizing.blockSize() - decodeTokens - 4);
        if (length < 1) {
            return Duration.ZERO;
        }
        int[] prompt = new int[length];
        for (int i = 0; i < length; i++) {
            prompt[i] = (int) ((i * 7919L + 13) % vocab);
        }
        long start = System.nanoTime();
        RequestStream stream = submit(new EngineRequest(prompt, SamplingParams.greedy().withMaxTokens(decodeTokens),
                true, -1, -1));
        while (true) {
            EngineEvent event = stream.next(120_000);
            switch (event) {
                case null -> throw new IllegalStateException("the warm-up request did not finish within two minutes");
                case EngineEvent.Failed failed -> throw new IllegalStateException(
                        "the warm-up request failed: " + failed.message());
                case EngineEvent.Finished finished -> {
                    return Duration.ofNanos(System.nanoTime() - start);
                }
                default -> {
                }
            }
        }
    }

    /**
     * Whether a request runs in the sharded lane: its prompt and generated tokens against one
     * device's share and against the one-device cache. Without a context window, unlimited
     * max_tokens count for nothing here (the request ends at its end-of-sequence token).
     */
    private boolean shards(int promptTokens, int maxTokens) {
        long positions = (long) promptTokens + (maxTokens == SamplingParams.UNLIMITED_TOKENS ? 0 : maxTokens);
        boolean fitsOneDevice = positions <= Integer.MAX_VALUE && cache.couldEverHold((int) positions);
        return parallelism.shards(positions, fitsOneDevice);
    }

    /**
     * Cancels a request: within one step its blocks and state slot are free and its stream ends
     * with Failed(CANCELLED). Unknown or finished ids are ignored.
     */
    public void cancel(String requestId) {
        ActiveRequest active = requests.get(requestId);
        if (active != null) {
            active.requestCancel();
            loop.wake();
            if (lane != null) {
                lane.wake();
            }
        }
    }

    /** The batched steps' stats; running and waiting also count the sharded lane's requests. */
    public EngineStats stats() {
        EngineStats stats = loop.stats();
        if (lane == null) {
            return stats;
        }
        return new EngineStats(stats.runningRequests() + lane.runningRequests(),
                stats.waitingRequests() + lane.waitingRequests(), stats.kvBlocksTotal(), stats.kvBlocksInUse(),
                stats.stateSlotsTotal(), stats.stateSlotsInUse(), stats.prefixQueries(), stats.prefixHits(),
                stats.prefixHitTokens(), stats.prefixQueryTokens(), stats.preemptions(), stats.stateSnapshots());
    }

    /**
     * Stops accepting requests, lets those in flight finish for up to {@code timeout}, then cancels
     * the rest and stops the step thread. Later calls do nothing.
     */
    public void shutdown(Duration timeout) {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        accepting = false;
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!requests.isEmpty() && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        if (!requests.isEmpty()) {
            LOG.warn("cancelling {} requests still in flight at shutdown", requests.size());
            requests.values().forEach(ActiveRequest::requestCancel);
        }
        loop.stop();
        if (lane != null) {
            lane.stop();
        }
        cache.close();
        backend.close();
        if (parallelism.model() != null) {
            parallelism.model().close();
        }
    }

    @Override
    public void close() {
        shutdown(Duration.ZERO);
    }
}
