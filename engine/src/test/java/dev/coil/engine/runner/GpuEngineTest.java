package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.concat;
import static dev.coil.engine.runner.EngineRuns.greedy;
import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.Fixtures;
import dev.coil.engine.model.TestModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The serving engine on the GPU backend, on every fixture model: the CPU engine's greedy tokens and
 * logprobs, and the invariances of {@link EngineTest} (batch composition, chunked prefill, prefix
 * hits, preemption) hold on the device too. Prompt attention runs on bf16 operands and bf16
 * checkpoints multiply bf16-rounded activations, hence the looser logprob tolerances.
 */
@GpuTest
class GpuEngineTest {

    static final double VERSUS_CPU = 3e-2;
    static final double ON_DEVICE = 5e-3;

    static List<String> models() {
        return Fixtures.MODELS;
    }

    static Engine start(String fixture, EngineOptions options, boolean graphs) {
        GpuFixture.device(); // fails, not skips, without a GPU
        LoadedModel model = TestModels.load(fixture);
        return Engine.start(model, GpuBackend.open(model, 0, graphs), options);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void concurrentRequestsGiveTheCpuEnginesTokens(String fixture) throws Exception {
        int vocab = TestModels.load(fixture).config().vocabSize();
        List<int[]> prompts = List.of(prompt(vocab, 37, 11), prompt(vocab, 20, 12), prompt(vocab, 53, 13));
        List<EngineRuns.Outcome> cpu = runTogether(EngineTest.start(fixture, EngineTest.SMALL.withKvDtype(DType.F32)),
                prompts, 12);
        for (boolean graphs : new boolean[] {false, true}) {
            Engine engine = start(fixture, EngineTest.SMALL.withKvDtype(DType.F32), graphs);
            GpuBackend backend = backendOf(engine);
            List<EngineRuns.Outcome> gpu = runTogether(engine, prompts, 12);
            for (int i = 0; i < prompts.size(); i++) {
                assertSameUntilANearTie(gpu.get(i), cpu.get(i), "request " + i + ", graphs " + graphs);
            }
            if (graphs) {
                assertThat(backend.graphReplays()).as("decode steps replayed from CUDA graphs").isPositive();
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void stepsQueuedAheadGiveTheTokensOfStepsOneAtATime(String fixture) throws Exception {
        int vocab = TestModels.load(fixture).config().vocabSize();
        List<int[]> prompts = List.of(prompt(vocab, 37, 61), prompt(vocab, 20, 62), prompt(vocab, 53, 63));
        List<Integer> first = runAhead(fixture, false, prompts.stream().map(ids -> greedy(ids, 12, -1)).toList())
                .getFirst().tokens();
        // The first request again, stopping on a token it generates while the steps run ahead.
        int stop = 3;
        while (stop < first.size() && first.subList(0, stop).contains(first.get(stop))) {
            stop++;
        }
        if (stop == first.size()) {
            stop = 0; // it repeats a few ids: stop on the first
        }
        List<EngineRequest> requests = new ArrayList<>(prompts.stream().map(ids -> greedy(ids, 9 + ids.length % 5, -1))
                .toList());
        requests.add(new EngineRequest(prompts.getFirst(), SamplingParams.greedy().withMaxTokens(12)
                .withStopTokenIds(java.util.Set.of(first.get(stop))), true, -1, -1));
        // Drawn on the device, seeded: the draw queued ahead takes the number the sampler gives next.
        SamplingParams sampled = SamplingParams.builder().temperature(0.8).topP(0.95).maxTokens(11).build();
        requests.add(new EngineRequest(prompts.get(1), sampled.withSeed(3L), true, -1, -1));
        requests.add(new EngineRequest(prompts.get(2), sampled.withSeed(4L).withTemperature(1.0).withTopP(1.0), true,
                -1, -1));
        // Draws that depend on the token before (a grammar, penalties): queued ahead, drawn later.
        OutputGrammar regex = OutputGrammar.regex("(yes|no)-[a-f0-9]{2,6}!?");
        requests.add(new EngineRequest(prompts.get(0), sampled.withSeed(5L).withGrammar(regex), true, 2, -1));
        requests.add(new EngineRequest(prompts.get(1), SamplingParams.greedy().withMaxTokens(12).withGrammar(regex),
                true, -1, -1));
        requests.add(new EngineRequest(prompts.get(2), sampled.withSeed(6L).withRepetitionPenalty(1.3)
                .withPresencePenalty(0.4).withFrequencyPenalty(0.2), true, -1, -1));
        List<EngineRuns.Outcome> oneAtATime = runAhead(fixture, false, requests);
        List<EngineRuns.Outcome> ahead = runAhead(fixture, true, requests);
        for (int i = 0; i < requests.size(); i++) {
            assertThat(ahead.get(i).tokens()).as("request %d", i).isEqualTo(oneAtATime.get(i).tokens());
            assertThat(ahead.get(i).finished().reason()).isEqualTo(oneAtATime.get(i).finished().reason());
        }
        // Its output ends with the stop id.
        assertThat(ahead.get(prompts.size()).tokens()).hasSize(stop + 1);
    }

    /** The requests submitted together to an engine with steps queued ahead or not; checks the cache is left empty. */
    private static List<EngineRuns.Outcome> runAhead(String fixture, boolean ahead, List<EngineRequest> requests)
            throws InterruptedException {
        System.setProperty(GpuBackend.RUN_AHEAD_PROPERTY, Boolean.toString(ahead));
        Engine engine;
        try {
            engine = start(fixture, EngineTest.SMALL, true);
        } finally {
            System.clearProperty(GpuBackend.RUN_AHEAD_PROPERTY);
        }
        try (engine) {
            List<RequestStream> streams = requests.stream().map(engine::submit).toList();
            List<EngineRuns.Outcome> outcomes = streams.stream().map(EngineRuns::collect).toList();
            for (EngineRuns.Outcome outcome : outcomes) {
                assertThat(outcome.failed()).isNull();
            }
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.kvBlocksInUse()).isZero();
            assertThat(stats.stateSlotsInUse()).isZero();
            GpuBackend backend = backendOf(engine);
            if (ahead) {
                assertThat(backend.fedSteps()).as("steps fed on the device").isPositive();
            } else {
                assertThat(backend.fedSteps()).isZero();
            }
            boolean drawsLater = requests.stream().anyMatch(request -> request.sampling().grammar() != null);
            if (ahead && drawsLater) {
                assertThat(backend.stepsDrawnLater()).as("steps drawn after their forward pass").isPositive();
            } else {
                assertThat(backend.stepsDrawnLater()).isZero();
            }
            return outcomes;
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void bf16CacheGivesTheF32CachesTokens(String fixture) throws Exception {
        int vocab = TestModels.load(fixture).config().vocabSize();
        List<int[]> prompts = List.of(prompt(vocab, 29, 41), prompt(vocab, 44, 42));
        List<EngineRuns.Outcome> f32 = runTogether(start(fixture, EngineTest.SMALL.withKvDtype(DType.F32), true),
                prompts, 10);
        List<EngineRuns.Outcome> bf16 = runTogether(start(fixture, EngineTest.SMALL, true), prompts, 10);
        for (int i = 0; i < prompts.size(); i++) {
            EngineTest.assertSameLogprobs(bf16.get(i).logprobs(), f32.get(i).logprobs(), VERSUS_CPU);
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
        try (Engine engine = start(fixture, EngineTest.SMALL.withPrefixCaching(false), true)) {
            for (int[] ids : prompts) {
                alone.add(run(engine, greedy(ids, 10, -1)).tokenArray());
            }
        }
        List<EngineRuns.Outcome> together = runTogether(
                start(fixture, EngineTest.SMALL.withPrefixCaching(false).withMaxBatchedTokens(64), true), prompts, 10);
        for (int i = 0; i < prompts.size(); i++) {
            assertThat(together.get(i).tokenArray()).as("request %d of 8", i).containsExactly(alone.get(i));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void chunkedPrefillGivesTheLogitsOfOneChunk(String fixture) {
        int[] ids = prompt(TestModels.load(fixture).config().vocabSize(), 61, 5);
        EngineRequest request = new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(3), true, 5, 5);
        EngineRuns.Outcome whole;
        try (Engine engine = start(fixture, EngineTest.SMALL.withMaxBatchedTokens(256), true)) {
            whole = run(engine, request);
        }
        for (int budget : new int[] {8, 29}) {
            try (Engine engine = start(fixture,
                    EngineTest.SMALL.withMaxBatchedTokens(budget).withSnapshotIntervalBlocks(0), true)) {
                EngineRuns.Outcome chunked = run(engine, request);
                EngineTest.assertSameLogprobs(chunked.promptLogprobs().positions(), whole.promptLogprobs().positions(),
                        ON_DEVICE);
                EngineTest.assertSameLogprobs(chunked.logprobs(), whole.logprobs(), ON_DEVICE);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void prefixCacheHitGivesTheLogitsOfAMiss(String fixture) throws InterruptedException {
        int vocab = TestModels.load(fixture).config().vocabSize();
        int[] first = prompt(vocab, 90, 21);
        int[] second = concat(Arrays.copyOf(first, 70), prompt(vocab, 15, 22));
        EngineRuns.Outcome miss;
        try (Engine engine = start(fixture, EngineTest.SMALL.withPrefixCaching(false), true)) {
            miss = run(engine, greedy(second, 6, 5));
        }
        try (Engine engine = start(fixture, EngineTest.SMALL.withSnapshotIntervalBlocks(2), true)) {
            run(engine, greedy(first, 3, -1));
            EngineRuns.Outcome hit = run(engine, greedy(second, 6, 5));
            assertThat(hit.finished().usage().cachedPromptTokens()).isEqualTo(64);
            assertThat(hit.tokens()).isEqualTo(miss.tokens());
            EngineTest.assertSameLogprobs(hit.logprobs(), miss.logprobs(), ON_DEVICE);
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.kvBlocksInUse()).isZero();
            assertThat(stats.stateSlotsInUse()).isZero();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void nextChatTurnResumesFromTheLastOne(String fixture) throws InterruptedException {
        LoadedModel model = TestModels.load(fixture);
        int vocab = model.config().vocabSize();
        int[] turn1 = prompt(vocab, 45, 31);
        try (Engine engine = start(fixture, EngineTest.SMALL, true)) {
            EngineRuns.Outcome reply = run(engine, greedy(turn1, 9, -1));
            int[] turn2 = concat(concat(turn1, reply.tokenArray()), prompt(vocab, 12, 32));
            EngineRuns.Outcome hit = run(engine, greedy(turn2, 5, 5));
            // The state after the prompt and all generated tokens but the last: 53 positions, so the
            // snapshot carries 5 K/V rows past the last full block, copied back into a block of the hit's own.
            int resumed = turn1.length + 9 - 1;
            boolean hasMamba = model.config().countBlocks(BlockSpec.Mamba.class) > 0;
            assertThat(hit.finished().usage().cachedPromptTokens()).isEqualTo(hasMamba ? resumed : resumed / 16 * 16);
            if (EngineTest.clampIsNoOp(model)) {
                try (Engine fresh = start(fixture, EngineTest.SMALL.withPrefixCaching(false), true)) {
                    EngineRuns.Outcome miss = run(fresh, greedy(turn2, 5, 5));
                    assertThat(hit.tokens()).isEqualTo(miss.tokens());
                    EngineTest.assertSameLogprobs(hit.logprobs(), miss.logprobs(), ON_DEVICE);
                }
            }
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.kvBlocksInUse()).isZero();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void preemptedRequestsResumeWithUnchangedOutput(String fixture) throws InterruptedException {
        LoadedModel model = TestModels.load(fixture);
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            prompts.add(prompt(model.config().vocabSize(), 30 + i, 300 + i));
        }
        List<EngineRuns.Outcome> uninterrupted = new ArrayList<>();
        try (Engine engine = start(fixture, EngineTest.SMALL, true)) {
            for (int[] ids : prompts) {
                uninterrupted.add(run(engine, greedy(ids, 40, 3)));
            }
        }
        EngineOptions tight = EngineTest.SMALL.withMaxSequences(4).withPrefixCaching(false);
        tight = tight.withCacheMemory(EngineLifecycleTest.budgetForBlocks(model, tight, 12));
        try (Engine engine = start(fixture, tight, true)) {
            List<RequestStream> streams = new ArrayList<>();
            for (int[] ids : prompts) {
                streams.add(engine.submit(greedy(ids, 40, 3)));
            }
            for (int i = 0; i < streams.size(); i++) {
                EngineRuns.Outcome outcome = EngineRuns.collect(streams.get(i));
                assertThat(outcome.tokens()).as("request %d", i).isEqualTo(uninterrupted.get(i).tokens());
                EngineTest.assertSameLogprobs(outcome.logprobs(), uninterrupted.get(i).logprobs(), ON_DEVICE);
            }
            EngineStats after = EngineRuns.settledStats(engine);
            if (engine.cacheSizing().blocks() == 12) { // models with attention layers, whose blocks run short
                assertThat(after.preemptions()).isPositive();
            }
            assertThat(after.kvBlocksInUse()).isZero();
            assertThat(after.stateSlotsInUse()).isZero();
        }
    }

    /**
     * Tokens drawn on the device (logit bias, penalties, temperature, top-k, top-p, min-p, the request's seeded
     * uniform numbers) are the tokens the CPU sampler draws from the same step's logits copied back:
     * with requests that have a bias or penalties among them, and without one, where each draw is handed the
     * step's greedy tokens as its rows' best logits.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void tokensDrawnOnTheDeviceEqualTheHostSamplersDraws(String fixture) throws Exception {
        List<SamplingParams> settings = List.of(
                SamplingParams.greedy().withTemperature(0.8).withMaxTokens(12).withSeed(1L),
                SamplingParams.greedy().withTemperature(1.1).withTopK(20).withMaxTokens(12).withSeed(2L),
                SamplingParams.greedy().withTemperature(0.9).withTopP(0.8).withMaxTokens(12).withSeed(3L),
                SamplingParams.greedy().withTemperature(1.0).withMinP(0.05).withRepetitionPenalty(1.3)
                        .withPresencePenalty(0.4).withFrequencyPenalty(0.2).withLogitBias(Map.of(5, 3f, 9, -2.5f))
                        .withMaxTokens(12).withSeed(4L),
                SamplingParams.greedy().withTemperature(0.7).withTopK(30).withTopP(0.9).withMinP(0.02)
                        .withMaxTokens(12).withSeed(5L),
                SamplingParams.greedy().withTemperature(0.9).withLogitBias(Map.of(3, 2.5f, 7, -100f, 11, 6f))
                        .withMaxTokens(12).withSeed(6L),
                // Greedy with a bias or penalties: drawn at temperature 0.
                SamplingParams.greedy().withLogitBias(Map.of(3, 4f, 8, 2f)).withMaxTokens(12),
                SamplingParams.greedy().withRepetitionPenalty(1.5).withFrequencyPenalty(0.5).withMaxTokens(12),
                // min_tokens holding back a stop id that a +100 bias all but forces: it ends the
                // request right after the fourth token, greedy or sampled.
                SamplingParams.greedy().withLogitBias(Map.of(13, 100f)).withStopTokenIds(Set.of(13)).withMinTokens(4)
                        .withMaxTokens(12),
                SamplingParams.greedy().withTemperature(0.8).withLogitBias(Map.of(13, 100f))
                        .withStopTokenIds(Set.of(13)).withMinTokens(4).withMaxTokens(12).withSeed(7L));
        assertDeviceDrawsEqualHostDraws(fixture, settings);
        assertDeviceDrawsEqualHostDraws(fixture, List.of(settings.get(0), settings.get(1), settings.get(2),
                settings.get(4)));
    }

    /**
     * Requests held to a grammar draw on the device with its allowed tokens as a mask: the tokens the
     * host draws from the logits copied back and masked there, sampled and greedy, beside a request
     * without a grammar, and with a bias; characters the vocabulary holds only in pieces too, and a
     * thinking budget's forced end tag.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void grammarDrawsOnTheDeviceEqualTheHostsDraws(String fixture) throws Exception {
        OutputGrammar schema = OutputGrammar.jsonSchema(StructuredOutputTest.RECORD);
        OutputGrammar regex = OutputGrammar.regex("(yes|no)-[a-f0-9]{2,6}!?");
        List<SamplingParams> settings = List.of(
                SamplingParams.builder().temperature(1.2).seed(11L).maxTokens(24).grammar(schema).build(),
                SamplingParams.builder().temperature(0).maxTokens(24).grammar(schema).build(),
                SamplingParams.greedy().withTemperature(0.9).withMaxTokens(12).withSeed(12L),
                SamplingParams.builder().temperature(0.8).topP(0.9).seed(13L).maxTokens(16).grammar(regex)
                        .logitBias(Map.of(3, 5f)).build(),
                SamplingParams.builder().temperature(0).maxTokens(16).grammar(OutputGrammar.jsonObject()).build(),
                // Characters the vocabulary holds only in pieces, spelled byte by byte.
                SamplingParams.builder().temperature(1.0).seed(14L).maxTokens(12)
                        .grammar(OutputGrammar.choice(List.of("中文", "漢字"))).build(),
                SamplingParams.builder().temperature(0).maxTokens(12).grammar(OutputGrammar.regex("😀{1,2}")).build(),
                // A thinking budget: the end tag's tokens forced after four, alone and before a grammar.
                SamplingParams.builder().temperature(0).maxTokens(12).thinkingBudget(THINKING).build(),
                SamplingParams.builder().temperature(0.9).seed(15L).maxTokens(16).thinkingBudget(THINKING)
                        .grammar(regex.after("</think>")).build());
        assertDeviceDrawsEqualHostDraws(fixture, settings);
    }

    private static final ThinkingBudget THINKING = new ThinkingBudget(4, "<think>", "</think>", true);

    /**
     * Requests with logprobs draw on the device, their log-probabilities computed there: greedy (a draw
     * at temperature 0), sampled, with top-k and top-p, with a bias and penalties (the logprobs are of
     * the logits before them), held to a grammar, and with min_tokens holding a stop id back, beside a
     * request without logprobs; the chosen token only, five and twenty top tokens. Tokens and
     * log-probabilities equal those of the same requests drawn on the host.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void logprobsComputedOnTheDeviceEqualTheHostsLogSoftmax(String fixture) throws Exception {
        List<SamplingParams> settings = List.of(
                SamplingParams.greedy().withMaxTokens(10),
                SamplingParams.greedy().withTemperature(0.8).withMaxTokens(10).withSeed(21L),
                SamplingParams.greedy().withTemperature(1.1).withTopK(20).withTopP(0.9).withMaxTokens(10).withSeed(22L),
                SamplingParams.greedy().withTemperature(1.0).withRepetitionPenalty(1.3).withPresencePenalty(0.4)
                        .withLogitBias(Map.of(5, 3f, 9, -2.5f)).withMaxTokens(10).withSeed(23L),
                SamplingParams.builder().temperature(0.9).seed(24L).maxTokens(16)
                        .grammar(OutputGrammar.regex("(yes|no)-[a-f0-9]{2,6}!?")).build(),
                SamplingParams.greedy().withLogitBias(Map.of(13, 100f)).withStopTokenIds(Set.of(13)).withMinTokens(4)
                        .withMaxTokens(10));
        for (int logprobs : new int[] {0, 5, EngineRequest.MAX_TOP_LOGPROBS}) {
            assertDeviceDrawsEqualHostDraws(fixture, settings, logprobs);
        }
    }

    /**
     * Greedy requests that all want logprobs, with nothing that rewrites their logits: every step's draw
     * is the logprobs launch alone ({@code LogprobsKernel.drawGreedy}); tokens and log-probabilities
     * equal those of the same requests drawn on the host, with the tokens and records written to pinned
     * memory in place and, without host mapping, copied there.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void greedyRequestsWithLogprobsDrawnInTheirLogprobsLaunchEqualTheHostsDraws(String fixture) throws Exception {
        List<SamplingParams> settings = List.of(SamplingParams.greedy().withMaxTokens(12),
                SamplingParams.greedy().withMaxTokens(7), SamplingParams.greedy().withMaxTokens(9));
        for (String hostMapped : new String[] {"true", "false"}) {
            System.setProperty(GpuBackend.HOST_MAPPED_PROPERTY, hostMapped);
            try {
                for (int logprobs : new int[] {0, 5, EngineRequest.MAX_TOP_LOGPROBS}) {
                    assertDeviceDrawsEqualHostDraws(fixture, settings, logprobs);
                }
            } finally {
                System.clearProperty(GpuBackend.HOST_MAPPED_PROPERTY);
            }
        }
    }

    /**
     * Prompt logprobs scored on the device (only the scores and each prompt's last row of logits come
     * back) against the same requests with every prompt row's logits sent to the host: the same
     * tokens, the same ranks, log-probabilities to {@link #ON_DEVICE}, the top tokens in order; prompts
     * in one chunk and in several (a budget of 16 tokens a step), beside a request without them.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void promptLogprobsScoredOnTheDeviceEqualTheHostsLogSoftmax(String fixture) throws Exception {
        int vocab = TestModels.load(fixture).config().vocabSize();
        List<EngineRequest> requests = List.of(
                new EngineRequest(prompt(vocab, 37, 81), SamplingParams.greedy().withMaxTokens(4), true, 2, 0),
                new EngineRequest(prompt(vocab, 23, 82), SamplingParams.greedy().withTemperature(0.9).withSeed(5L)
                        .withMaxTokens(4), true, -1, 5),
                new EngineRequest(prompt(vocab, 41, 83), SamplingParams.greedy().withMaxTokens(3), true, -1,
                        EngineRequest.MAX_TOP_LOGPROBS),
                new EngineRequest(prompt(vocab, 19, 84), SamplingParams.greedy().withMaxTokens(5), true, 1, -1),
                new EngineRequest(prompt(vocab, 1, 85), SamplingParams.greedy().withMaxTokens(0), true, -1, 3));
        for (int budget : new int[] {256, 16}) {
            List<List<EngineRuns.Outcome>> runs = new ArrayList<>();
            for (boolean onDevice : new boolean[] {false, true}) {
                System.setProperty(GpuBackend.PROMPT_SCORING_PROPERTY, Boolean.toString(onDevice));
                try (Engine engine = start(fixture, EngineTest.SMALL.withMaxBatchedTokens(budget), true)) {
                    List<RequestStream> streams = requests.stream().map(engine::submit).toList();
                    runs.add(streams.stream().map(EngineRuns::collect).toList());
                } finally {
                    System.clearProperty(GpuBackend.PROMPT_SCORING_PROPERTY);
                }
            }
            for (int i = 0; i < requests.size(); i++) {
                String what = fixture + ", budget " + budget + ", request " + i;
                EngineRuns.Outcome host = runs.get(0).get(i);
                EngineRuns.Outcome device = runs.get(1).get(i);
                assertThat(device.failed()).as(what).isNull();
                assertThat(device.tokens()).as(what).isEqualTo(host.tokens());
                if (requests.get(i).promptLogprobs() < 0) {
                    assertThat(device.promptLogprobs()).as(what).isNull();
                    continue;
                }
                List<EngineEvent.PositionLogprobs> expected = host.promptLogprobs().positions();
                List<EngineEvent.PositionLogprobs> actual = device.promptLogprobs().positions();
                assertThat(actual).as(what).hasSize(requests.get(i).promptLength() - 1);
                EngineTest.assertSameLogprobs(actual, expected, ON_DEVICE);
                for (int p = 0; p < actual.size(); p++) {
                    assertThat(actual.get(p).rank()).as("%s, position %d: rank", what, p + 1)
                            .isEqualTo(expected.get(p).rank()).isPositive();
                }
                EngineTest.assertSameLogprobs(device.logprobs(), host.logprobs(), ON_DEVICE);
            }
        }
    }

    /**
     * allowed_token_ids (a mask in the draw, beside a grammar's) and bad_words (-infinity in the
     * draw's bias where the output ends with the rest of a word): drawn on the device, the host's
     * tokens, greedy and sampled, with and without logprobs.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void restrictedDrawsOnTheDeviceEqualTheHostsDraws(String fixture) throws Exception {
        Set<Integer> allowed = Set.of(3, 7, 11, 19, 23, 40);
        List<List<Integer>> badWords = List.of(List.of(5), List.of(9, 13), List.of(2, 4, 6));
        List<SamplingParams> settings = List.of(
                SamplingParams.greedy().withAllowedTokenIds(allowed).withMaxTokens(10),
                SamplingParams.greedy().withTemperature(1.1).withAllowedTokenIds(allowed).withMaxTokens(10)
                        .withSeed(31L),
                SamplingParams.greedy().withAllowedTokenIds(allowed).withLogitBias(Map.of(7, 2f))
                        .withBadWords(List.of(List.of(7, 7))).withMaxTokens(10),
                SamplingParams.greedy().withBadWords(badWords).withMaxTokens(10),
                SamplingParams.greedy().withTemperature(0.9).withBadWords(badWords).withMaxTokens(10).withSeed(32L));
        assertDeviceDrawsEqualHostDraws(fixture, settings);
        assertDeviceDrawsEqualHostDraws(fixture, settings, 2);
    }

    /**
     * Structured outputs on the GPU backend (their logits read on the host each step): JSON mode, a
     * JSON schema and a regex; every output holds to its grammar and ends (STOP) exactly when it is whole.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void structuredOutputsHoldToTheirGrammar(String fixture) throws Exception {
        int vocab = TestModels.load(fixture).config().vocabSize();
        try (Engine engine = start(fixture, EngineTest.SMALL, true)) {
            for (int seed = 0; seed < 12; seed++) {
                OutputGrammar grammar = seed < 4 ? OutputGrammar.jsonObject()
                        : seed < 8 ? OutputGrammar.jsonSchema(StructuredOutputTest.RECORD)
                        : OutputGrammar.regex("(yes|no)-[a-f0-9]{4}");
                SamplingParams params = SamplingParams.builder().temperature(seed % 4 == 0 ? 0 : 1.2).seed((long) seed)
                        .maxTokens(40).grammar(grammar).build();
                EngineRuns.Outcome outcome = EngineRuns.collect(engine.submit(new EngineRequest(
                        prompt(vocab, 11, seed), params, false, -1, -1)));
                assertThat(outcome.failed()).as("seed %d", seed).isNull();
                GrammarCursor cursor = new GrammarCursor(grammar);
                assertThat(cursor.acceptAll(outcome.text())).as("seed %d: %s", seed, outcome.text()).isTrue();
                assertThat(outcome.finished().reason() == FinishReason.STOP).isEqualTo(cursor.done());
            }
        }
    }

    /**
     * Requests arriving at random while steps run queued ahead on the device, some cancelled after a
     * few tokens ({@link RandomArrivals}): every other request gets the tokens it gets alone.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void randomArrivalsStopsAndCancellationsLeaveEveryOtherRequestsTokens(String fixture) throws Exception {
        RandomArrivals.assertEachEndsAsAlone(fixture, () -> start(fixture, EngineTest.SMALL, true), ON_DEVICE,
                engine -> assertThat(backendOf(engine).fedSteps()).as("steps fed on the device").isPositive());
    }

    private void assertDeviceDrawsEqualHostDraws(String fixture, List<SamplingParams> settings) throws Exception {
        assertDeviceDrawsEqualHostDraws(fixture, settings, -1);
    }

    /**
     * The same requests drawn on the host (their logits copied back) and on the device give the same
     * tokens; with {@code logprobs} (-1 none) the device's log-probabilities (computed beside its draw)
     * equal the host's log-softmax of the logits it was sent, to {@link #ON_DEVICE}, the top tokens in
     * the same order but where two are equal to it.
     */
    private void assertDeviceDrawsEqualHostDraws(String fixture, List<SamplingParams> settings, int logprobs)
            throws Exception {
        int vocab = TestModels.load(fixture).config().vocabSize();
        List<EngineRuns.Outcome> host = null;
        for (boolean onDevice : new boolean[] {false, true}) {
            System.setProperty(GpuBackend.SAMPLING_PROPERTY, Boolean.toString(onDevice));
            List<EngineRuns.Outcome> outcomes = new ArrayList<>();
            try (Engine engine = start(fixture, EngineTest.SMALL, true)) {
                List<RequestStream> streams = new ArrayList<>();
                for (int i = 0; i < settings.size(); i++) {
                    streams.add(engine.submit(new EngineRequest(prompt(vocab, 20 + 7 * i, 60 + i), settings.get(i),
                            true, logprobs, -1)));
                }
                for (RequestStream stream : streams) {
                    EngineRuns.Outcome outcome = EngineRuns.collect(stream);
                    assertThat(outcome.failed()).as("failure").isNull();
                    outcomes.add(outcome);
                }
            } finally {
                System.clearProperty(GpuBackend.SAMPLING_PROPERTY);
            }
            if (host == null) {
                host = outcomes;
                continue;
            }
            for (int i = 0; i < settings.size(); i++) {
                String what = settings.get(i) + ", logprobs " + logprobs;
                assertThat(outcomes.get(i).tokens()).as(what).isEqualTo(host.get(i).tokens());
                if (settings.get(i).minTokens() > 0) {
                    assertThat(outcomes.get(i).tokens()).as(what).hasSize(settings.get(i).minTokens() + 1);
                }
                assertThat(outcomes.get(i).logprobs()).as(what).hasSize(logprobs < 0 ? 0
                        : outcomes.get(i).tokens().size());
                // The steps around a request differ between the two runs (queued ahead or not), and a
                // step's rows move its products' rounding: the logits agree to ON_DEVICE, not exactly
                // (LogprobsKernelTest holds the device's log-softmax to the host's on the same logits).
                EngineTest.assertSameLogprobs(outcomes.get(i).logprobs(), host.get(i).logprobs(), ON_DEVICE);
            }
        }
    }

    /**
     * Greedy tokens and their logprobs equal the CPU's, all of them, unless the GPU chose the other
     * token of a near tie (the CPU's two best closer than the tolerance; bf16 rounding may order it
     * either way): that token is one of the two, and the continuations differ from there on.
     */
    static void assertSameUntilANearTie(EngineRuns.Outcome gpu, EngineRuns.Outcome cpu, String what) {
        assertThat(gpu.logprobs()).as(what).hasSameSizeAs(cpu.logprobs());
        for (int i = 0; i < cpu.logprobs().size(); i++) {
            EngineEvent.PositionLogprobs expected = cpu.logprobs().get(i);
            EngineEvent.PositionLogprobs actual = gpu.logprobs().get(i);
            double margin = expected.top().get(0).logprob() - expected.top().get(1).logprob();
            if (margin < VERSUS_CPU && actual.chosen().id() != expected.chosen().id()) {
                // The near tie went the other way: the continuations differ from here on.
                assertThat(actual.chosen().id()).as("%s, near tie at %d", what, i)
                        .isIn(expected.top().get(0).id(), expected.top().get(1).id());
                return;
            }
            assertThat(actual.chosen().id()).as("%s, token %d", what, i).isEqualTo(expected.chosen().id());
            assertThat((double) actual.chosen().logprob()).as("%s, logprob %d", what, i)
                    .isCloseTo(expected.chosen().logprob(), org.assertj.core.api.Assertions.within(VERSUS_CPU));
        }
    }

    /** Submits every prompt at once (greedy, logprobs 3), collects them, closes the engine. */
    private static List<EngineRuns.Outcome> runTogether(Engine engine, List<int[]> prompts, int maxTokens) {
        try (engine) {
            List<RequestStream> streams = new ArrayList<>();
            for (int[] ids : prompts) {
                streams.add(engine.submit(greedy(ids, maxTokens, 3)));
            }
            List<EngineRuns.Outcome> outcomes = new ArrayList<>();
            for (RequestStream stream : streams) {
                outcomes.add(EngineRuns.collect(stream));
            }
            return outcomes;
        }
    }

    private static GpuBackend backendOf(Engine engine) {
        return (GpuBackend) engine.backend();
    }
}
