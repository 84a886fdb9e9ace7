package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.model.Granite300mCheckpoint;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/**
 * Prints how long the serving engine takes to prefill long prompts of the 300M-shaped model on one
 * GPU, with the engine's default options (the server's on the CPU; on a GPU the server takes 8192
 * tokens a step and snapshots every 64 blocks, the last variant's budget and the engine's cache with
 * fewer cuts) and with the prefix cache's parts switched off one at a time: a prompt's time to its first token, against the model's own prefill rate. Each prompt is
 * new (no prefix of it cached); then a chat's next turn after a 6000-token first one, which the
 * prefix cache serves but for its new tokens. Timings are printed, not asserted; run with
 * {@code TESTS="--select-class dev.coil.engine.runner.LongPromptTimingTest" bash .gpu/gpu-run.sh tests .gpu}
 * ({@code JAVA_PROPS=-Dcoil.bench.ssdPrecision=tf32} for the first test's engines to scan in tf32).
 */
@GpuTest
class LongPromptTimingTest {

    private record Variant(String name, UnaryOperator<EngineOptions> options) {
    }

    /** The first test's scan precision ({@code --ssd-precision}). */
    private static final ScanPrecision PRECISION = ScanPrecision.parse(System.getProperty("coil.bench.ssdPrecision",
            "f32"));

    private static final List<Variant> VARIANTS = List.of(
            new Variant("engine defaults", o -> o),
            new Variant("no snapshots during prefill", o -> o.withSnapshotIntervalBlocks(0)),
            new Variant("no prefix cache", o -> o.withPrefixCaching(false)),
            new Variant("no prefix cache, 8192 tokens a step", o -> o.withPrefixCaching(false).withMaxBatchedTokens(8192)));

    @Test
    void printsTimeToFirstTokenOfLongPrompts() throws Exception {
        CudaDevice device = GpuFixture.device();
        int[] lengths = {2000, 6000, 6000, 16000};
        System.setProperty(GpuBackend.STEP_TIMING_PROPERTY, "true");
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel loaded = LoadedModel.load(checkpoint.folder())) {
            int vocab = loaded.config().vocabSize();
            SplittableRandom random = new SplittableRandom(5);
            for (Variant variant : VARIANTS) {
                EngineOptions options = variant.options().apply(EngineOptions.DEFAULTS.withCacheMemory("8G"));
                GpuBackend backend = GpuBackend.open(loaded, 0, true, PRECISION.kernelPrecision());
                List<String> results = new ArrayList<>();
                try (Engine engine = Engine.start(loaded, backend, options)) {
                    for (int length : lengths) {
                        EngineRequest request = new EngineRequest(random.ints(length, 1, vocab).toArray(),
                                SamplingParams.greedy().withMaxTokens(2), true, -1, -1);
                        long start = System.nanoTime();
                        EngineEvent.Finished finished = EngineRuns.run(engine, request).finished();
                        assertThat(finished).as("the request finished").isNotNull();
                        double millis = (System.nanoTime() - start) / 1e6;
                        RequestTimings timings = finished.timings();
                        results.add(String.format("%d tokens: first token %.1f ms (prefill %.1f ms, %.0f tokens/s),"
                                + " whole request %.1f ms", length, timings.firstTokenMillis(), timings.prefillMillis(),
                                length * 1000 / timings.prefillMillis(), millis));
                        assertThat(finished.usage().completionTokens()).isEqualTo(2);
                    }
                    // A chat's next turn: the 6000-token first turn and its 16-token reply, then 100 new
                    // tokens. With the prefix cache, only the new tokens (and the reply's last) are computed.
                    int[] turn1 = random.ints(6000, 1, vocab).toArray();
                    EngineRuns.Outcome reply = EngineRuns.run(engine,
                            new EngineRequest(turn1, SamplingParams.greedy().withMaxTokens(16), true, -1, -1));
                    int[] turn2 = EngineRuns.concat(EngineRuns.concat(turn1, reply.tokenArray()),
                            random.ints(100, 1, vocab).toArray());
                    EngineEvent.Finished next = EngineRuns.run(engine,
                            new EngineRequest(turn2, SamplingParams.greedy().withMaxTokens(2), true, -1, -1)).finished();
                    assertThat(next).as("the next turn finished").isNotNull();
                    results.add(String.format("next chat turn, %d tokens (%d cached): first token %.1f ms",
                            turn2.length, next.usage().cachedPromptTokens(), next.timings().firstTokenMillis()));
                    System.out.printf("[long-prompt] %s, granite300m bf16, %s (max %d tokens a step, snapshot every %d"
                            + " blocks, prefix cache %s):%n  %s%n  steps: %s%n", backend.description(), variant.name(),
                            options.maxBatchedTokens(), options.snapshotIntervalBlocks(), options.prefixCaching(),
                            String.join("\n  ", results), backend.stepProfile());
                }
            }
        } finally {
            System.clearProperty(GpuBackend.STEP_TIMING_PROPERTY);
        }
    }

    /**
     * A chat that grows past the warm-up's prompt, one turn at a time, in a fresh engine warmed up as
     * the server warms up: each turn is the last one, its 16-token reply and 500 new tokens, so each
     * is longer than any before (and grows the attention's gathered keys). Printed per turn: time to
     * the first token, and the whole turn (prefill of the new tokens, 16 decoded). Run with
     * {@code -Dcoil.cuda.scratchGrowth=1} to compare with buffers grown to exact sizes.
     */
    @Test
    void printsTheTurnsOfAChatGrowingPastTheWarmUp() throws Exception {
        CudaDevice device = GpuFixture.device();
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel loaded = LoadedModel.load(checkpoint.folder())) {
            int vocab = loaded.config().vocabSize();
            SplittableRandom random = new SplittableRandom(9);
            EngineOptions options = EngineOptions.DEFAULTS.withCacheMemory("8G").withMaxBatchedTokens(8192);
            List<String> turns = new ArrayList<>();
            try (Engine engine = Engine.start(loaded, GpuBackend.open(loaded, 0, true), options)) {
                engine.warmUp();
                int[] prompt = random.ints(9000, 1, vocab).toArray();
                for (int turn = 1; turn <= 10; turn++) {
                    long start = System.nanoTime();
                    EngineRuns.Outcome reply = EngineRuns.run(engine,
                            new EngineRequest(prompt, SamplingParams.greedy().withMaxTokens(16), true, -1, -1));
                    double millis = (System.nanoTime() - start) / 1e6;
                    EngineEvent.Finished finished = reply.finished();
                    assertThat(finished).as("turn %d finished", turn).isNotNull();
                    assertThat(finished.usage().completionTokens()).isEqualTo(16);
                    turns.add(String.format("turn %d, %d tokens (%d cached): first token %.1f ms, whole turn %.1f ms",
                            turn, prompt.length, finished.usage().cachedPromptTokens(),
                            finished.timings().firstTokenMillis(), millis));
                    prompt = EngineRuns.concat(EngineRuns.concat(prompt, reply.tokenArray()),
                            random.ints(500, 1, vocab).toArray());
                }
            }
            System.out.printf("[long-prompt] %s, granite300m bf16, a growing chat (scratch growth %s):%n  %s%n",
                    device.description(), System.getProperty("coil.cuda.scratchGrowth", "default"),
                    String.join("\n  ", turns));
        }
    }

    /**
     * What a long prompt costs the requests already decoding beside it, per step budget: 16 requests
     * decode (128-token prompts); once each has 16 tokens, a new 16000-token prompt arrives. Printed:
     * that prompt's time to its first token, and the decoding requests' gaps between tokens while
     * it prefilled (mean and longest) against their median gap before it arrived.
     */
    @Test
    void printsDecodeGapsWhileALongPromptPrefills() throws Exception {
        CudaDevice device = GpuFixture.device();
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel loaded = LoadedModel.load(checkpoint.folder())) {
            int vocab = loaded.config().vocabSize();
            for (int budget : new int[] {1024, 2048, 8192}) {
                SplittableRandom random = new SplittableRandom(9);
                EngineOptions options = EngineOptions.DEFAULTS.withCacheMemory("8G").withMaxBatchedTokens(budget);
                try (Engine engine = Engine.start(loaded, GpuBackend.open(loaded, 0, true), options)) {
                    engine.warmUp();
                    int decoders = 16;
                    List<List<Long>> arrivals = new ArrayList<>();
                    List<Thread> readers = new ArrayList<>();
                    CountDownLatch started = new CountDownLatch(decoders);
                    for (int r = 0; r < decoders; r++) {
                        RequestStream stream = engine.submit(new EngineRequest(random.ints(128, 1, vocab).toArray(),
                                SamplingParams.greedy().withMaxTokens(400), true, -1, -1));
                        List<Long> times = Collections.synchronizedList(new ArrayList<>());
                        arrivals.add(times);
                        readers.add(Thread.startVirtualThread(() -> read(stream, times, started)));
                    }
                    assertThat(started.await(5, java.util.concurrent.TimeUnit.MINUTES))
                            .as("every decoder reached its 16th token").isTrue();
                    long submitted = System.nanoTime();
                    EngineEvent.Finished longPrompt = EngineRuns.run(engine, new EngineRequest(
                            random.ints(16000, 1, vocab).toArray(), SamplingParams.greedy().withMaxTokens(1), true, -1,
                            -1)).finished();
                    assertThat(longPrompt).as("the long prompt finished").isNotNull();
                    long firstToken = submitted + (long) (longPrompt.timings().firstTokenMillis() * 1e6);
                    for (Thread reader : readers) {
                        reader.join();
                    }
                    List<Double> before = new ArrayList<>();
                    List<Double> during = new ArrayList<>();
                    for (List<Long> times : arrivals) {
                        assertThat(times).hasSize(400);
                        for (int i = 1; i < times.size(); i++) {
                            double gap = (times.get(i) - times.get(i - 1)) / 1e6;
                            if (times.get(i) <= submitted && i >= 4) {
                                before.add(gap);
                            } else if (times.get(i) > submitted && times.get(i - 1) < firstToken) {
                                during.add(gap);
                            }
                        }
                    }
                    before.sort(null);
                    System.out.printf("[long-prompt] %s, granite300m bf16, %d tokens a step: a 16000-token prompt beside"
                            + " %d decoding requests: first token %.1f ms; their gaps between tokens meanwhile: mean %.1f"
                            + " ms, longest %.1f ms (%d gaps), against a median of %.2f ms before it%n",
                            device.description(), budget, decoders, longPrompt.timings().firstTokenMillis(),
                            during.stream().mapToDouble(Double::doubleValue).average().orElse(0),
                            during.stream().mapToDouble(Double::doubleValue).max().orElse(0), during.size(),
                            before.isEmpty() ? 0 : before.get(before.size() / 2));
                }
            }
        }
    }

    /** Records when each token of {@code stream} arrives; counts {@code started} down at its 16th. */
    private static void read(RequestStream stream, List<Long> times, CountDownLatch started) {
        try {
            while (true) {
                EngineEvent event = stream.next(60_000);
                if (event instanceof EngineEvent.Token) {
                    times.add(System.nanoTime());
                    if (times.size() == 16) {
                        started.countDown();
                    }
                } else if (event == null || event instanceof EngineEvent.Failed) {
                    // Counted down so that the test stops waiting; its size check then fails on this request.
                    started.countDown();
                    System.out.println("[long-prompt] a decoder ended early: " + event);
                    return;
                } else if (event instanceof EngineEvent.Finished) {
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
