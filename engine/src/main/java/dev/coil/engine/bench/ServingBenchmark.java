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

    /** One chat replay: per-turn prompt lengths and what the prefix cache served. */
    public record ChatRow(boolean prefixCaching, int turns, long promptTokens, long cachedTokens, double seconds,
            double meanTimeToFirstTokenMillis, List<Integer> replyTokens) {
        public double hitRate() {
            return promptTokens == 0 ? 0 : (double) cachedTokens / promptTokens;
        }
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
        SplittableRandom random = new SplittableRandom(7);
        int vocab = loaded.config().vocabSize();
        List<ThroughputRow> rows = new ArrayList<>();
        boolean prefixCaching = Boolean.getBoolean(PREFIX_CACHING_PROPERTY) && options.prefixCaching();
        try (Engine engine = Engine.start(loaded, backends.get(), options.withPrefixCaching(prefixCaching))) {
            log.accept("warming up...");
            // Every kernel path a level takes (one token, a few, many) gets compiled before anything is timed.
            for (int warm : new int[] {1, 4, 16, 64}) {
                runAll(engine, requests(random, vocab, Math.min(warm, options.maxSequences()), promptTokens, 16,
                        sampling));
            }
            for (int concurrency : concurrencies) {
                log.accept(concurrency + " concurrent requests...");
                List<EngineRequest> batch = requests(random, vocab, concurrency, promptTokens, maxTokens, sampling);
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
     * reply and {@code userTokens} new tokens; run with the prefix cache on, then off.
     */
    public static List<ChatRow> chat(LoadedModel loaded, Supplier<Backend> backends, EngineOptions options, int turns,
            int userTokens,
            int replyTokens, Consumer<String> log) throws InterruptedException {
        List<ChatRow> rows = new ArrayList<>();
        for (boolean caching : new boolean[] {true, false}) {
            log.accept("replaying a " + turns + "-turn chat, prefix cache " + (caching ? "on" : "off") + "...");
            SplittableRandom random = new SplittableRandom(11);
            int vocab = loaded.config().vocabSize();
            try (Engine engine = Engine.start(loaded, backends.get(), options.withPrefixCaching(caching))) {
                runAll(engine, requests(new SplittableRandom(3), vocab, 2, userTokens, 4)); // warm-up
                int[] history = new int[0];
                long promptTotal = 0;
                long cachedTotal = 0;
                double firstTokenTotal = 0;
                List<Integer> replies = new ArrayList<>();
                long start = System.nanoTime();
                for (int turn = 0; turn < turns; turn++) {
                    int[] prompt = concat(history, random.ints(userTokens, 1, vocab).toArray());
                    EngineRequest request = new EngineRequest(prompt,
                            SamplingParams.greedy().withMaxTokens(replyTokens), true, -1, -1);
                    List<Integer> reply = new ArrayList<>();
                    EngineEvent.Finished finished = collect(engine.submit(request), reply);
                    promptTotal += prompt.length;
                    cachedTotal += finished.usage().cachedPromptTokens();
                    firstTokenTotal += finished.timings().firstTokenMillis();
                    replies.addAll(reply);
                    history = concat(prompt, reply.stream().mapToInt(Integer::intValue).toArray());
                }
                double seconds = (System.nanoTime() - start) / 1e9;
                rows.add(new ChatRow(caching, turns, promptTotal, cachedTotal, seconds, firstTokenTotal / turns,
                        replies));
                EngineStats stats = engine.stats();
                log.accept("  prefix queries " + stats.prefixQueries() + ", hits " + stats.prefixHits());
            }
        }
        return rows;
    }

    private static List<EngineRequest> requests(SplittableRandom random, int vocab, int count, int promptTokens,
            int maxTokens) {
        return requests(random, vocab, count, promptTokens, maxTokens, SamplingParams.greedy());
    }

    private static List<EngineRequest> requests(SplittableRandom random, int vocab, int count, int promptTokens,
            int maxTokens, SamplingParams sampling) {
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
            requests.add(new EngineRequest(random.ints(length, 1, vocab).toArray(), params, true, -1, -1));
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
            finished.add(collect(stream, new ArrayList<>()));
        }
        return finished;
    }

    private static EngineEvent.Finished collect(RequestStream stream, List<Integer> tokens)
            throws InterruptedException {
        while (true) {
            EngineEvent event = stream.next();
            switch (event) {
                case EngineEvent.Token token -> tokens.add(token.id());
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
