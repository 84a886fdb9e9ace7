package dev.coil.engine.bench;

import dev.coil.engine.runner.Backend;
import dev.coil.engine.runner.Engine;
import dev.coil.engine.runner.EngineEvent;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.engine.runner.EngineRequest;
import dev.coil.engine.runner.EngineStats;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.RequestStream;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.TokenLogprob;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The serving engine under load: generated tokens/s with N requests in flight at once (continuous
 * batching), and the prefix cache on a replayed multi-turn chat, with and without it.
 */
public final class ServingBenchmark {

    /**
     * System property: {@code -Dcoil.bench.promptSpread=S} (0 to 1) draws each request's prompt length
     * uniformly from promptTokens · (1 ± S) instead of promptTokens, so that steps meet prompt chunks
     * of many lengths, as a server does. Unset: every prompt has promptTokens tokens.
     */
    public static final String PROMPT_SPREAD_PROPERTY = "coil.bench.promptSpread";

    /**
     * System property: {@code -Dcoil.bench.prefixCaching=true} keeps the prefix cache on in the
     * throughput runs, as the server runs by default (every prompt is new, so it only saves, at each
     * prompt chunk and each finished request). Unset: off, the engine alone.
     */
    public static final String PREFIX_CACHING_PROPERTY = "coil.bench.prefixCaching";

    /**
     * One concurrency level: every request generates the same count; prompts have promptTokens tokens
     * (on average, with {@link #PROMPT_SPREAD_PROPERTY}).
     */
    public record ThroughputRow(int concurrency, int promptTokens, int generatedPerRequest, double seconds,
            double generatedTokensPerSecond, double meanTimeToFirstTokenMillis, double meanDecodeTokensPerSecond) {
    }

    /**
     * One chat replay: per-turn prompt lengths and what the prefix cache served; every reply token
     * with the logprob margin between the two most likely tokens where it was picked.
     */
    public record ChatRow(boolean prefixCaching, int turns, long promptTokens, long cachedTokens, double seconds,
            double meanTimeToFirstTokenMillis, List<Integer> replyTokens, List<Float> replyMargins) {
        public double hitRate() {
            return promptTokens == 0 ? 0 : (double) cachedTokens / promptTokens;
        }
    }

    /**
     * Where two replays' replies part: the first reply token that differs, or -1 where they are the
     * same. Greedy replies may part where the two most likely tokens are nearly tied, since a
     * prefix served from the cache is computed in other pieces than the whole prompt, which rounds
     * differently (on a GPU, bf16 attention operands and per-shape products).
     */
    public static int firstDifference(ChatRow a, ChatRow b) {
        int common = Math.min(a.replyTokens().size(), b.replyTokens().size());
        for (int i = 0; i < common; i++) {
            if (!a.replyTokens().get(i).equals(b.replyTokens().get(i))) {
                return i;
            }
        }
        return a.replyTokens().size() == b.replyTokens().size() ? -1 : common;
    }

    private ServingBenchmark() {
    }

    /** Each engine the benchmark starts runs on a backend from {@code backends} (the engine closes it). */
    public static List<ThroughputRow> throughput(LoadedModel loaded, Supplier<Backend> backends, EngineOptions options,
            int[] concurrencies, int promptTokens, int maxTokens, Consumer<String> log) throws InterruptedException {
        return throughput(loaded, backends, options, concurrencies, promptTokens, maxTokens, SamplingParams.greedy(),
                log);
    }

    /** As above, every request sampling with {@code sampling} (its max tokens replaced; seeded per request). */
    public static List<ThroughputRow> throughput(LoadedModel loaded, Supplier<Backend> backends, EngineOptions options,
            int[] concurrencies, int promptTokens, int maxTokens, SamplingParams sampling, Consumer<String> log)
            throws InterruptedException {
        return throughput(loaded, backends, options, concurrencies, promptTokens, maxTokens, sampling, -1, log);
    }

    /** As above, every request asking for {@code logprobs} (-1 none, else the top tokens) of each token. */
    public static List<ThroughputRow> throughput(LoadedModel loaded, Supplier<Backend> backends, EngineOptions options,
            int[] concurrencies, int promptTokens, int maxTokens, SamplingParams sampling, int logprobs,
            Consumer<String> log) throws InterruptedException {
        SplittableRandom random = new SplittableRandom(7);
        int vocab = loaded.config().vocabSize();
        List<ThroughputRow> rows = new ArrayList<>();
        boolean prefixCaching = Boolean.getBoolean(PREFIX_CACHING_PROPERTY) && options.prefixCaching();
        try (Engine engine = Engine.start(loaded, backends.get(), options.withPrefixCaching(prefixCaching))) {
            log.accept("warming up...");
            // Every kernel path a level takes (one token, a few, many) gets compiled before anything is timed.
            for (int warm : new int[] {1, 4, 16, 64}) {
                runAll(engine, requests(random, vocab, Math.min(warm, options.maxSequences()), promptTokens, 16,
                        sampling, logprobs));
            }
            for (int concurrency : concurrencies) {
                log.accept(concurrency + (concurrency == 1 ? " request" : " requests") + " in flight...");
                List<EngineRequest> batch = requests(random, vocab, concurrency, promptTokens, maxTokens, sampling,
                        logprobs);
                long start = System.nanoTime();
                List<EngineEvent.Finished> done = runAll(engine, batch);
                double seconds = (System.nanoTime() - start) / 1e9;
                long generated = done.stream().mapToLong(f -> f.usage().completionTokens()).sum();
                rows.add(new ThroughputRow(concurrency, promptTokens, maxTokens, seconds, generated / seconds,
                        done.stream().mapToDouble(f -> f.timings().firstTokenMillis()).average().orElse(0),
                        done.stream().mapToDouble(f -> f.timings().decodeTokensPerSecond()).average().orElse(0)));
            }
        }
        return rows;
    }

    /**
     * A chat of {@code turns} turns replayed: each turn's prompt is the previous prompt, the previous
     * reply and {@code userTokens} new tokens; run with the prefix cache on, then off. A shorter
     * replay with the cache on goes first, untimed: whichever replay ran first in the JVM would
     * otherwise pay for compiling the step loop's code (on a GPU, about 100 ms of the first turn).
     * With {@code serverWarmUp} each engine is first warmed up as {@code coil serve} warms up a GPU
     * engine ({@link Engine#warmUp}), so that no turn pays for growing its buffers.
     */
    public static List<ChatRow> chat(LoadedModel loaded, Supplier<Backend> backends, EngineOptions options, int turns,
            int userTokens, int replyTokens, boolean serverWarmUp, Consumer<String> log) throws InterruptedException {
        log.accept("warming up: a " + Math.min(turns, 3) + "-turn chat, prefix cache on, untimed...");
        replay(loaded, backends, options, true, Math.min(turns, 3), userTokens, replyTokens, serverWarmUp,
                message -> { });
        List<ChatRow> rows = new ArrayList<>();
        for (boolean caching : new boolean[] {true, false}) {
            log.accept("replaying a " + turns + "-turn chat, prefix cache " + (caching ? "on" : "off") + "...");
            rows.add(replay(loaded, backends, options, caching, turns, userTokens, replyTokens, serverWarmUp, log));
        }
        return rows;
    }

    /** One replay of the chat in an engine of its own, each turn logged. */
    private static ChatRow replay(LoadedModel loaded, Supplier<Backend> backends, EngineOptions options,
            boolean caching, int turns, int userTokens, int replyTokens, boolean serverWarmUp, Consumer<String> log)
            throws InterruptedException {
        SplittableRandom random = new SplittableRandom(11);
        int vocab = loaded.config().vocabSize();
        try (Engine engine = Engine.start(loaded, backends.get(), options.withPrefixCaching(caching))) {
            runAll(engine, requests(new SplittableRandom(3), vocab, 2, userTokens, 4)); // warm-up
            if (serverWarmUp) {
                engine.warmUp();
            }
            int[] history = new int[0];
            long promptTotal = 0;
            long cachedTotal = 0;
            double firstTokenTotal = 0;
            List<Integer> replies = new ArrayList<>();
            List<Float> margins = new ArrayList<>();
            long start = System.nanoTime();
            for (int turn = 0; turn < turns; turn++) {
                int[] prompt = concat(history, random.ints(userTokens, 1, vocab).toArray());
                EngineRequest request = new EngineRequest(prompt,
                        SamplingParams.greedy().withMaxTokens(replyTokens), true, 2, -1);
                List<Integer> reply = new ArrayList<>();
                long turnStart = System.nanoTime();
                EngineEvent.Finished finished = collect(engine.submit(request), reply, margins);
                log.accept(String.format("  turn %d: %d prompt tokens, %d from the cache, first token %.1f ms,"
                        + " whole turn %.1f ms", turn + 1, prompt.length, finished.usage().cachedPromptTokens(),
                        finished.timings().firstTokenMillis(), (System.nanoTime() - turnStart) / 1e6));
                promptTotal += prompt.length;
                cachedTotal += finished.usage().cachedPromptTokens();
                firstTokenTotal += finished.timings().firstTokenMillis();
                replies.addAll(reply);
                history = concat(prompt, reply.stream().mapToInt(Integer::intValue).toArray());
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            EngineStats stats = engine.stats();
            log.accept("  prefix queries " + stats.prefixQueries() + ", hits " + stats.prefixHits());
            return new ChatRow(caching, turns, promptTotal, cachedTotal, seconds, firstTokenTotal / turns, replies,
                    margins);
        }
    }

    private static List<EngineRequest> requests(SplittableRandom random, int vocab, int count, int promptTokens,
            int maxTokens) {
        return requests(random, vocab, count, promptTokens, maxTokens, SamplingParams.greedy(), -1);
    }

    private static List<EngineRequest> requests(SplittableRandom random, int vocab, int count, int promptTokens,
            int maxTokens, SamplingParams sampling, int logprobs) {
        List<EngineRequest> requests = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            SamplingParams params = sampling.withMaxTokens(maxTokens);
            if (!params.isGreedy()) {
                params = params.withSeed(random.nextLong());
            }
            double spread = Double.parseDouble(System.getProperty(PROMPT_SPREAD_PROPERTY, "0"));
            int length = promptTokens;
            if (spread > 0) {
                int low = (int) Math.max(1, Math.round(promptTokens * (1 - spread)));
                int high = (int) Math.round(promptTokens * (1 + spread));
                length = low + random.nextInt(high - low + 1);
            }
            requests.add(new EngineRequest(random.ints(length, 1, vocab).toArray(), params, true, logprobs, -1));
        }
        return requests;
    }

    private static List<EngineEvent.Finished> runAll(Engine engine, List<EngineRequest> requests)
            throws InterruptedException {
        List<RequestStream> streams = new ArrayList<>();
        for (EngineRequest request : requests) {
            streams.add(engine.submit(request));
        }
        List<EngineEvent.Finished> finished = new ArrayList<>();
        for (RequestStream stream : streams) {
            finished.add(collect(stream, new ArrayList<>(), null));
        }
        return finished;
    }

    /** Collects a request's tokens, and where {@code margins} is given each token's top-two logprob margin. */
    static EngineEvent.Finished collect(RequestStream stream, List<Integer> tokens, List<Float> margins)
            throws InterruptedException {
        while (true) {
            EngineEvent event = stream.next();
            switch (event) {
                case EngineEvent.Token token -> {
                    tokens.add(token.id());
                    if (margins != null) {
                        List<TokenLogprob> top = token.logprobs() == null ? List.of() : token.logprobs().top();
                        margins.add(top.size() < 2 ? Float.NaN : top.get(0).logprob() - top.get(1).logprob());
                    }
                }
                case EngineEvent.Finished finished -> {
                    return finished;
                }
                case EngineEvent.Failed failed -> throw new IllegalStateException(
                        "benchmark request failed: " + failed.message());
                case EngineEvent.PromptLogprobs ignored -> {
                }
            }
        }
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
