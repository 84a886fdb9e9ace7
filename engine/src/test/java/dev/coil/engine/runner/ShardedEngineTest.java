package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.greedy;
import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.Fixtures;
import dev.coil.engine.model.TestModels;
import dev.coil.engine.parallel.ContextParallelMode;
import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.parallel.CpuShardedModel;
import dev.coil.engine.parallel.RingScore;
import dev.coil.engine.parallel.ShardLayout;
import dev.coil.engine.parallel.ShardedModel;
import dev.coil.engine.parallel.ShardedRun;
import dev.coil.engine.parallel.Sharding;
import dev.coil.engine.parallel.VirtualDevices;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.function.IntPredicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The engine with a sharded model over two virtual CPU devices: requests routed to the sharded
 * lane give the one-device engine's tokens and logprobs, say "ring x2" among their paths, and
 * live beside batched requests, cancellations and failures as batched requests do.
 */
class ShardedEngineTest {

    /** Two devices of one thread each, for the whole class: the engines' sharded models leave them open. */
    private static final VirtualDevices DEVICES = VirtualDevices.cpu(2, 1);
    /** The one-device baseline keeps K/V in f32, as the sharded model does. */
    private static final EngineOptions ONE_DEVICE = EngineTest.SMALL.withKvDtype(DType.F32);
    private static final double LOGPROB = 1e-4;

    static List<String> models() {
        return Fixtures.MODELS;
    }

    private static Engine sharded(LoadedModel model, ShardedModel sharded, ContextParallelMode mode,
            EngineOptions options) {
        return Engine.start(model, EngineTest.OPS, options, new ContextParallelism(sharded, mode, ShardLayout.ZIGZAG));
    }

    private static Engine sharded(LoadedModel model, ContextParallelMode mode) {
        return sharded(model, new CpuShardedModel(model, DEVICES), mode, EngineTest.SMALL);
    }

    private static SamplingParams seeded(int maxTokens, long seed) {
        return SamplingParams.builder().temperature(0.9).topK(40).topP(0.95).repetitionPenalty(1.1).seed(seed)
                .maxTokens(maxTokens).build();
    }

    /** Greedy with logprobs and prompt logprobs, greedy plain, and seeded sampling: the requests compared below. */
    private static List<EngineRequest> requests(int vocab) {
        return List.of(new EngineRequest(prompt(vocab, 37, 11), SamplingParams.greedy().withMaxTokens(10), true, 3, 3),
                greedy(prompt(vocab, 5, 12), 6, -1),
                new EngineRequest(prompt(vocab, 29, 13), seeded(12, 7), true, -1, -1),
                new EngineRequest(prompt(vocab, 29, 13), seeded(12, 8), true, 2, -1));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void alwaysGivesTheOneDeviceTokensAndLogprobs(String fixture) {
        LoadedModel model = TestModels.load(fixture);
        List<EngineRequest> requests = requests(model.config().vocabSize());
        List<EngineRuns.Outcome> expected = new ArrayList<>();
        try (Engine engine = Engine.start(model, EngineTest.OPS, ONE_DEVICE)) {
            for (EngineRequest request : requests) {
                expected.add(run(engine, request));
            }
        }
        boolean hasMamba = model.config().countBlocks(BlockSpec.Mamba.class) > 0;
        try (Engine engine = sharded(model, ContextParallelMode.ALWAYS)) {
            for (int i = 0; i < requests.size(); i++) {
                EngineRuns.Outcome want = expected.get(i);
                EngineRuns.Outcome got = run(engine, requests.get(i));
                assertThat(got.failed()).as("request %d", i).isNull();
                assertThat(got.tokens()).as("%s request %d", fixture, i).isEqualTo(want.tokens());
                assertThat(got.text()).isEqualTo(want.text());
                EngineTest.assertSameLogprobs(got.logprobs(), want.logprobs(), LOGPROB);
                if (requests.get(i).promptLogprobs() >= 0) {
                    assertThat(want.promptLogprobs()).as("request %d's prompt logprobs on one device", i).isNotNull();
                    assertThat(got.promptLogprobs()).as("request %d's prompt logprobs sharded", i).isNotNull();
                    EngineTest.assertSameLogprobs(got.promptLogprobs().positions(), want.promptLogprobs().positions(),
                            LOGPROB);
                } else {
                    assertThat(got.promptLogprobs()).as("request %d asked for no prompt logprobs", i).isNull();
                }
                assertThat(got.finished().reason()).isEqualTo(want.finished().reason());
                assertThat(got.finished().usage()).isEqualTo(want.finished().usage());
                List<String> paths = new ArrayList<>(List.of("ring x2"));
                if (hasMamba) {
                    paths.add("ssd-scan");
                    if (got.tokens().size() > 1) {
                        paths.add("ssm-recurrence");
                    }
                }
                assertThat(got.finished().paths()).containsExactlyElementsOf(paths);
                RequestTimings timings = got.finished().timings();
                assertThat(timings.prefillMillis()).isPositive();
                assertThat(timings.decodeMillis()).isNotNegative();
                assertThat(timings.firstTokenMillis()).isGreaterThanOrEqualTo(timings.prefillMillis());
                assertThat(timings.computedPromptTokens()).isEqualTo(requests.get(i).promptLength());
                assertThat(timings.generatedTokens()).isEqualTo(got.tokens().size());
            }
        }
    }

    @Test
    void stopStringsAndStopTokensEndTheShardedRunAsTheBatchedOne() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int[] ids = prompt(model.config().vocabSize(), 24, 31);
        EngineRuns.Outcome free;
        try (Engine engine = Engine.start(model, EngineTest.OPS, ONE_DEVICE)) {
            free = run(engine, greedy(ids, 24, -1));
        }
        assertThat(free.tokens()).hasSize(24);
        String stop = free.text().substring(free.text().length() / 2, free.text().length() / 2 + 3);
        int stopToken = free.tokens().get(9);
        List<EngineRequest> requests = List.of(
                new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(24).withStopStrings(List.of(stop)), true,
                        -1, -1),
                new EngineRequest(ids, SamplingParams.builder().temperature(0).stopTokenIds(Set.of(stopToken))
                        .maxTokens(24).build(), true, -1, -1));
        try (Engine oneDevice = Engine.start(model, EngineTest.OPS, ONE_DEVICE);
                Engine engine = sharded(model, ContextParallelMode.ALWAYS)) {
            for (EngineRequest request : requests) {
                EngineRuns.Outcome want = run(oneDevice, request);
                EngineRuns.Outcome got = run(engine, request);
                assertThat(want.finished().reason()).isEqualTo(FinishReason.STOP);
                assertThat(want.tokens()).hasSizeLessThan(24);
                assertThat(got.tokens()).isEqualTo(want.tokens());
                assertThat(got.text()).isEqualTo(want.text());
                assertThat(got.finished().reason()).isEqualTo(FinishReason.STOP);
                assertThat(got.finished().stopString()).isEqualTo(want.finished().stopString());
                assertThat(got.finished().stopTokenId()).isEqualTo(want.finished().stopTokenId());
                assertThat(got.finished().paths()).contains("ring x2");
            }
        }
    }

    @Test
    void neverKeepsEveryRequestOnTheBatchedSteps() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        try (Engine engine = sharded(model, ContextParallelMode.NEVER)) {
            EngineRuns.Outcome outcome = run(engine, greedy(prompt(model.config().vocabSize(), 60, 3), 4, -1));
            assertThat(outcome.finished().paths()).containsExactly("flash", "ssd-scan", "ssm-recurrence");
        }
    }

    /**
     * Auto with one device's share at 40 positions: the long prompt runs sharded beside the short
     * ones, which stay batched; all of them give what they give alone on one device.
     */
    @Test
    void autoShardsOnlyTheRequestTooLongForOneDevice() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        List<EngineRequest> requests = new ArrayList<>();
        requests.add(greedy(prompt(vocab, 90, 41), 30, 2)); // 120 positions: sharded
        for (int i = 0; i < 4; i++) {
            requests.add(greedy(prompt(vocab, 12 + i, 50 + i), 20, 2)); // at most 35: batched
        }
        List<EngineRuns.Outcome> expected = new ArrayList<>();
        try (Engine engine = Engine.start(model, EngineTest.OPS, ONE_DEVICE)) {
            for (EngineRequest request : requests) {
                expected.add(run(engine, request));
            }
        }
        ShardedModel small = new SmallDevices(new CpuShardedModel(model, DEVICES), 40);
        try (Engine engine = sharded(model, small, ContextParallelMode.AUTO, ONE_DEVICE)) {
            List<RequestStream> streams = new ArrayList<>();
            for (EngineRequest request : requests) {
                streams.add(engine.submit(request));
            }
            for (int i = 0; i < streams.size(); i++) {
                EngineRuns.Outcome outcome = EngineRuns.collect(streams.get(i));
                assertThat(outcome.failed()).as("request %d", i).isNull();
                assertThat(outcome.tokens()).as("request %d", i).isEqualTo(expected.get(i).tokens());
                EngineTest.assertSameLogprobs(outcome.logprobs(), expected.get(i).logprobs(), LOGPROB);
                if (i == 0) {
                    assertThat(outcome.finished().paths()).first().isEqualTo("ring x2");
                } else {
                    assertThat(outcome.finished().paths()).noneMatch(path -> path.startsWith("ring"));
                }
            }
        }
    }

    /** A request the one-device cache can never hold is refused without a sharded model, and runs sharded with one. */
    @Test
    void autoShardsWhatTheOneDeviceCacheCouldNeverHold() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        EngineOptions options = ONE_DEVICE.withMaxSequences(2).withPrefixCaching(false);
        options = options.withCacheMemory(EngineLifecycleTest.budgetForBlocks(model, options, 4)); // 64 tokens
        EngineRequest request = greedy(prompt(model.config().vocabSize(), 70, 61), 8, -1);
        try (Engine engine = Engine.start(model, EngineTest.OPS, options)) {
            assertThat(engine.cacheSizing().blocks() * engine.cacheSizing().blockSize()).isLessThan(78);
            assertThat(run(engine, request).failed().reason()).isEqualTo(EngineEvent.Failed.Reason.REJECTED);
        }
        try (Engine engine = sharded(model, new CpuShardedModel(model, DEVICES), ContextParallelMode.AUTO, options)) {
            EngineRuns.Outcome outcome = run(engine, request);
            assertThat(outcome.failed()).isNull();
            assertThat(outcome.tokens()).hasSize(8);
            assertThat(outcome.finished().paths()).first().isEqualTo("ring x2");
            assertThat(run(engine, greedy(prompt(model.config().vocabSize(), 10, 62), 8, -1)).finished().paths())
                    .doesNotContain("ring x2");
        }
    }

    /**
     * Cancelling the running sharded request, and one still waiting behind it, ends both CANCELLED
     * and frees the lane for the next.
     */
    @Test
    void cancelledShardedRequestsFreeTheLane() throws Exception {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        int window = model.config().contextLength();
        try (Engine engine = sharded(model, ContextParallelMode.ALWAYS)) {
            RequestStream running = engine.submit(greedy(prompt(vocab, 20, 71), window - 20, -1));
            RequestStream waiting = engine.submit(greedy(prompt(vocab, 20, 72), window - 20, -1));
            assertThat(running.next(30_000)).isInstanceOf(EngineEvent.Token.class);
            waiting.cancel();
            running.cancel();
            EngineRuns.Outcome cancelled = EngineRuns.collect(running);
            assertThat(cancelled.failed().reason()).isEqualTo(EngineEvent.Failed.Reason.CANCELLED);
            assertThat(cancelled.tokens().size()).isLessThan(window - 20 - 1);
            EngineRuns.Outcome neverRan = EngineRuns.collect(waiting);
            assertThat(neverRan.failed().reason()).isEqualTo(EngineEvent.Failed.Reason.CANCELLED);
            assertThat(neverRan.tokens()).isEmpty();

            EngineRuns.Outcome next = run(engine, greedy(prompt(vocab, 20, 73), 5, -1));
            assertThat(next.finished().usage().completionTokens()).isEqualTo(5);
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.runningRequests() + stats.waitingRequests()).isZero();
        }
    }

    /**
     * A sharded run that throws fails its own request with the error; the batched requests beside
     * it and the next sharded one go on.
     */
    @Test
    void aFailingShardedRunFailsItsRequestAlone() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        ShardedModel failing = new FailingOn(new SmallDevices(new CpuShardedModel(model, DEVICES), 40),
                length -> length == 50);
        try (Engine engine = sharded(model, failing, ContextParallelMode.AUTO, EngineTest.SMALL)) {
            RequestStream doomed = engine.submit(greedy(prompt(vocab, 50, 81), 3, -1));
            RequestStream batched = engine.submit(greedy(prompt(vocab, 10, 82), 12, -1));
            RequestStream next = engine.submit(greedy(prompt(vocab, 51, 83), 3, -1));
            EngineRuns.Outcome failed = EngineRuns.collect(doomed);
            assertThat(failed.failed().reason()).isEqualTo(EngineEvent.Failed.Reason.ERROR);
            assertThat(failed.failed().message()).contains("ring x2").contains("no prompt of 50 tokens");
            assertThat(EngineRuns.collect(batched).finished().usage().completionTokens()).isEqualTo(12);
            EngineRuns.Outcome after = EngineRuns.collect(next);
            assertThat(after.finished().usage().completionTokens()).isEqualTo(3);
            assertThat(after.finished().paths()).contains("ring x2");
        }
    }

    /** A sharded model as {@code inner}, whose devices hold only {@code positions} positions each. */
    private record SmallDevices(ShardedModel inner, long positions) implements ShardedModel {
        @Override
        public int deviceCount() {
            return inner.deviceCount();
        }

        @Override
        public long positionsPerDevice() {
            return positions;
        }

        @Override
        public ShardedRun newRun(ShardLayout layout) {
            return inner.newRun(layout);
        }

        @Override
        public RingScore score(int[] ids, int topK, ShardLayout layout) {
            return inner.score(ids, topK, layout);
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    /** A sharded model as {@code inner} whose prefill throws for prompt lengths {@code fails} picks. */
    private record FailingOn(ShardedModel inner, IntPredicate fails) implements ShardedModel {
        @Override
        public int deviceCount() {
            return inner.deviceCount();
        }

        @Override
        public long positionsPerDevice() {
            return inner.positionsPerDevice();
        }

        @Override
        public ShardedRun newRun(ShardLayout layout) {
            ShardedRun run = inner.newRun(layout);
            return new ShardedRun() {
                @Override
                public float[] prefill(int[] prompt) {
                    if (fails.test(prompt.length)) {
                        throw new IllegalStateException("no prompt of " + prompt.length + " tokens");
                    }
                    return run.prefill(prompt);
                }

                @Override
                public float[] decode(int token) {
                    return run.decode(token);
                }

                @Override
                public Sharding sharding() {
                    return run.sharding();
                }

                @Override
                public void close() {
                    run.close();
                }
            };
        }

        @Override
        public RingScore score(int[] ids, int topK, ShardLayout layout) {
            return inner.score(ids, topK, layout);
        }

        @Override
        public void close() {
            inner.close();
        }
    }
}
