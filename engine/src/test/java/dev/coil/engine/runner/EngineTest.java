package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.concat;
import static dev.coil.engine.runner.EngineRuns.greedy;
import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.Fixtures;
import dev.coil.engine.model.TestModels;
import dev.coil.engine.ops.Ops;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The serving engine on the fixture models: what batching, chunking and caching must not change. */
class EngineTest {

    static final Ops OPS = new CpuOps(new Parallel(2));
    static final EngineOptions SMALL = EngineOptions.DEFAULTS.withCacheMemory("64M").withMaxSequences(8)
            .withMaxBatchedTokens(256);

    static List<String> models() {
        return Fixtures.MODELS;
    }

    static Engine start(String fixture, EngineOptions options) {
        return Engine.start(TestModels.load(fixture), OPS, options);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void greedyTokensEqualTheStandaloneGenerator(String fixture) {
        LoadedModel model = TestModels.load(fixture);
        int[] ids = prompt(model.config().vocabSize(), 37, 11);
        Generation expected = new Generator(model, OPS).generate(ids, SamplingParams.greedy().withMaxTokens(12), true,
                text -> { });
        try (Engine engine = start(fixture, SMALL.withKvDtype(DType.F32))) {
            EngineRuns.Outcome outcome = run(engine, greedy(ids, 12, -1));
            assertThat(outcome.tokenArray()).containsExactly(expected.tokenIds());
            assertThat(outcome.finished().usage().completionTokens()).isEqualTo(12);
        }
    }

    /**
     * Requests arriving at random, some cancelled after a few tokens ({@link RandomArrivals}): every
     * other request gets the tokens it gets alone, and the cache is left empty.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void randomArrivalsStopsAndCancellationsLeaveEveryOtherRequestsTokens(String fixture) throws Exception {
        RandomArrivals.assertEachEndsAsAlone(fixture, () -> start(fixture, SMALL), 1e-4, engine -> { });
    }

    /**
     * --batch-invariant on the CPU: each request served alone, then all at once (prompts chunked
     * beside others' prompts and decodes), gets the same tokens and logprobs bit for bit.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void batchInvariantRequestsGetTheirLogprobsAloneBitForBit(String fixture) throws Exception {
        int vocab = TestModels.load(fixture).config().vocabSize();
        List<EngineRequest> requests = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            SamplingParams params = i % 2 == 1 ? SamplingParams.greedy().withTemperature(0.8).withSeed(9L + i)
                    : SamplingParams.greedy();
            requests.add(new EngineRequest(prompt(vocab, 4 + 23 * i, 70 + i), params.withMaxTokens(6), true, 2, -1));
        }
        // 48 tokens a step for 8 sequences: prompts in chunks of 41.
        try (Engine engine = Engine.start(TestModels.load(fixture), new CpuOps(new Parallel(2), true),
                SMALL.withMaxBatchedTokens(48).withBatchInvariant(true))) {
            EngineRuns.assertAloneAndTogetherAlike(engine, requests);
        }
    }

    /**
     * The mode is one choice for the engine and its backend: either given alone would serve requests
     * whose bits still depend on their neighbours, so the engine refuses to start.
     */
    @Test
    void batchInvarianceGivenToOnlyTheOptionsOrOnlyTheBackendIsRefused() {
        LoadedModel model = TestModels.load(Fixtures.MODELS.getFirst());
        assertThatThrownBy(() -> Engine.start(model, new CpuOps(new Parallel(2), false), SMALL.withBatchInvariant(true)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("batch-invariant backend");
        assertThatThrownBy(() -> Engine.start(model, new CpuOps(new Parallel(2), true), SMALL))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("batch-invariant options");
        try (Engine engine = Engine.start(model, new CpuOps(new Parallel(2), true), SMALL.withBatchInvariant(true))) {
            assertThat(engine.backendDescription()).isEqualTo("cpu");
        }
    }

    /**
     * A request asked again gets its logprobs' very bits, from the first requests after start on,
     * while the JIT is still compiling the kernels (their vector sums and exponentials were once
     * left to the Vector API, whose interpreted and compiled orders differ).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void aRequestAskedAgainGetsTheSameLogprobBits(String fixture) {
        int vocab = TestModels.load(fixture).config().vocabSize();
        try (Engine engine = start(fixture, SMALL.withPrefixCaching(false))) {
            for (int i = 0; i < 6; i++) {
                SamplingParams params = i % 2 == 1 ? SamplingParams.greedy().withTemperature(0.8).withSeed(9L + i)
                        : SamplingParams.greedy();
                EngineRequest request = new EngineRequest(prompt(vocab, 4 + 23 * i, 70 + i), params.withMaxTokens(6),
                        true, 2, -1);
                EngineRuns.Outcome first = run(engine, request);
                EngineRuns.Outcome again = run(engine, request);
                assertThat(again.tokenArray()).as("request %d", i).containsExactly(first.tokenArray());
                assertSameLogprobs(again.logprobs(), first.logprobs(), 0.0);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void batchCompositionDoesNotChangeGreedyTokens(String fixture) throws Exception {
        int vocab = TestModels.load(fixture).config().vocabSize();
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            prompts.add(prompt(vocab, 5 + 9 * i, 100 + i));
        }
        List<int[]> alone = new ArrayList<>();
        try (Engine engine = start(fixture, SMALL.withPrefixCaching(false))) {
            for (int[] ids : prompts) {
                EngineRuns.Outcome outcome = run(engine, greedy(ids, 10, -1));
                assertThat(outcome.finished()).as("request alone: %s", outcome.failed()).isNotNull();
                assertThat(outcome.tokens()).as("tokens of a request alone").isNotEmpty();
                alone.add(outcome.tokenArray());
            }
        }
        try (Engine engine = start(fixture, SMALL.withPrefixCaching(false).withMaxBatchedTokens(64))) {
            List<RequestStream> streams = new ArrayList<>();
            for (int[] ids : prompts) {
                streams.add(engine.submit(greedy(ids, 10, -1)));
            }
            for (int i = 0; i < streams.size(); i++) {
                EngineRuns.Outcome outcome = EngineRuns.collect(streams.get(i));
                assertThat(outcome.finished()).as("request %d of 8: %s", i, outcome.failed()).isNotNull();
                assertThat(outcome.tokenArray()).as("request %d of 8", i).containsExactly(alone.get(i));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void chunkedPrefillGivesTheLogitsOfOneChunk(String fixture) {
        int[] ids = prompt(TestModels.load(fixture).config().vocabSize(), 61, 5);
        EngineRequest request = new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(1), true, 5, 5);
        EngineRuns.Outcome whole;
        try (Engine engine = start(fixture, SMALL.withMaxBatchedTokens(256))) {
            whole = run(engine, request);
        }
        for (int budget : new int[] {8, 13, 29}) {
            try (Engine engine = start(fixture, SMALL.withMaxBatchedTokens(budget).withSnapshotIntervalBlocks(0))) {
                EngineRuns.Outcome chunked = run(engine, request);
                assertSameLogprobs(chunked.promptLogprobs().positions(), whole.promptLogprobs().positions(), 2e-5);
                assertSameLogprobs(chunked.logprobs(), whole.logprobs(), 2e-5);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void prefixCacheHitGivesTheLogitsOfAMiss(String fixture) throws InterruptedException {
        int vocab = TestModels.load(fixture).config().vocabSize();
        int[] first = prompt(vocab, 90, 21);
        int[] second = concat(java.util.Arrays.copyOf(first, 70), prompt(vocab, 15, 22));
        EngineRuns.Outcome miss;
        try (Engine engine = start(fixture, SMALL.withPrefixCaching(false))) {
            miss = run(engine, greedy(second, 6, 5));
        }
        // Snapshots every 2 blocks of 16: the 70-token shared prefix resumes from position 64.
        try (Engine engine = start(fixture, SMALL.withSnapshotIntervalBlocks(2))) {
            run(engine, greedy(first, 3, -1));
            EngineRuns.Outcome hit = run(engine, greedy(second, 6, 5));
            assertThat(hit.finished().usage().cachedPromptTokens()).isEqualTo(64);
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.prefixHits()).isEqualTo(1);
            assertThat(stats.prefixHitTokens()).isEqualTo(64);
            assertThat(hit.tokens()).isEqualTo(miss.tokens());
            assertSameLogprobs(hit.logprobs(), miss.logprobs(), 2e-5);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void snapshotsDoNotCutPromptChunksShorterThanTheStepBudget(String fixture) throws InterruptedException {
        LoadedModel model = TestModels.load(fixture);
        int vocab = model.config().vocabSize();
        int[] first = prompt(vocab, 150, 41);
        int[] second = concat(java.util.Arrays.copyOf(first, 120), prompt(vocab, 7, 42));
        // 64 tokens a step, snapshots at multiples of one block of 16: the first prompt runs as
        // 64 + 64 + 16 + 6 tokens with snapshots at 64, 128, 144 and its end (150), not as chunks
        // of 16 with a snapshot after each. So the second prompt, sharing 120 tokens, resumes at 64.
        EngineRuns.Outcome miss;
        try (Engine engine = start(fixture, SMALL.withMaxBatchedTokens(64).withPrefixCaching(false))) {
            miss = run(engine, greedy(second, 3, 2));
        }
        try (Engine engine = start(fixture, SMALL.withMaxBatchedTokens(64).withSnapshotIntervalBlocks(1))) {
            run(engine, greedy(first, 1, -1));
            EngineStats afterFirst = EngineRuns.settledStats(engine);
            EngineRuns.Outcome hit = run(engine, greedy(second, 3, 2));
            boolean hasMamba = model.config().countBlocks(BlockSpec.Mamba.class) > 0;
            assertThat(hit.finished().usage().cachedPromptTokens()).isEqualTo(hasMamba ? 64 : 112);
            assertThat(hit.tokens()).isEqualTo(miss.tokens());
            assertSameLogprobs(hit.logprobs(), miss.logprobs(), 2e-5);
            assertThat(afterFirst.stateSnapshots()).isEqualTo(hasMamba ? 4 : 0);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void warmUpChangesNoLaterRequest(String fixture) throws InterruptedException {
        int[] ids = prompt(TestModels.load(fixture).config().vocabSize(), 40, 51);
        EngineRuns.Outcome cold;
        try (Engine engine = start(fixture, SMALL)) {
            cold = run(engine, greedy(ids, 8, 3));
        }
        try (Engine engine = start(fixture, SMALL)) {
            assertThat(engine.warmUp()).isPositive();
            assertThat(engine.warmUp(64, 16)).isPositive(); // the CPU's, as coil serve sends it
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.kvBlocksInUse()).isZero();
            assertThat(stats.stateSlotsInUse()).isZero();
            EngineRuns.Outcome warm = run(engine, greedy(ids, 8, 3));
            assertThat(warm.finished().usage().cachedPromptTokens()).isZero();
            assertThat(warm.tokens()).isEqualTo(cold.tokens());
            // Not bit for bit: the Vector API's lane reductions may sum in another order once compiled.
            assertSameLogprobs(warm.logprobs(), cold.logprobs(), 2e-5);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void nextChatTurnResumesFromTheLastOne(String fixture) {
        LoadedModel model = TestModels.load(fixture);
        int vocab = model.config().vocabSize();
        int[] turn1 = prompt(vocab, 41, 31);
        try (Engine engine = start(fixture, SMALL)) {
            EngineRuns.Outcome reply = run(engine, greedy(turn1, 9, -1));
            int[] turn2 = concat(concat(turn1, reply.tokenArray()), prompt(vocab, 12, 32));
            EngineRuns.Outcome hit = run(engine, greedy(turn2, 5, 5));
            // The state after the prompt and all generated tokens but the last (sampled, never fed).
            int resumed = turn1.length + 9 - 1;
            boolean hasMamba = model.config().countBlocks(BlockSpec.Mamba.class) > 0;
            int expected = hasMamba ? resumed : resumed / 16 * 16;
            assertThat(hit.finished().usage().cachedPromptTokens()).isEqualTo(expected);

            // A miss computes the generated tokens as prompt tokens: the same when the prefill dt clamp is a no-op.
            if (clampIsNoOp(model)) {
                try (Engine fresh = start(fixture, SMALL.withPrefixCaching(false))) {
                    EngineRuns.Outcome miss = run(fresh, greedy(turn2, 5, 5));
                    assertThat(hit.tokens()).isEqualTo(miss.tokens());
                    assertSameLogprobs(hit.logprobs(), miss.logprobs(), 2e-5);
                }
            }
        }
    }

    static boolean clampIsNoOp(LoadedModel model) {
        return model.config().blocks().stream().noneMatch(block -> block instanceof BlockSpec.Mamba mamba
                && (mamba.dtMin() > 0f || mamba.dtMax() < Float.POSITIVE_INFINITY));
    }

    static void assertSameLogprobs(List<EngineEvent.PositionLogprobs> actual,
            List<EngineEvent.PositionLogprobs> expected, double tolerance) {
        assertThat(actual).hasSameSizeAs(expected);
        for (int i = 0; i < actual.size(); i++) {
            assertThat(actual.get(i).chosen().id()).isEqualTo(expected.get(i).chosen().id());
            assertThat((double) actual.get(i).chosen().logprob()).as("position %d", i)
                    .isCloseTo(expected.get(i).chosen().logprob(), within(tolerance));
            TopLogprobAssertions.assertSameTop(actual.get(i).top(), expected.get(i).top(), tolerance,
                    "position " + i);
        }
    }
}
