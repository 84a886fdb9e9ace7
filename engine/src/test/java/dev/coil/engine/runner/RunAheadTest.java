package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.concat;
import static dev.coil.engine.runner.EngineRuns.greedy;
import static dev.coil.engine.runner.EngineRuns.prompt;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.model.Batch;
import dev.coil.engine.model.TestModels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Decode steps queued ahead of their tokens ({@link Backend#feedsTokensOnDevice}): the engine's
 * requests end exactly as with steps run one at a time, including requests that end on a stop id
 * while the step behind them is queued, and the cache they leave (blocks, slots, the prefix cache's
 * snapshot) is the same as theirs would be.
 */
class RunAheadTest {

    /**
     * The CPU backend, feeding a fed segment the greedy token the previous batch chose for its
     * source segment, as the GPU's does on the device. Steps run at submission; what is under test is
     * the engine's bookkeeping around them.
     */
    static final class Feeding extends DeviceGreedyPathTest.TokensOnly {
        final AtomicInteger fedSegments = new AtomicInteger();
        /** Fed segments whose draw asked for logprobs: steps queued ahead for requests with logprobs. */
        final AtomicInteger fedWithLogprobs = new AtomicInteger();
        /** Fed segments drawn later ({@link Batch.Draw#LATER}), their draws handed over after the step before was read. */
        final AtomicInteger drawnLater = new AtomicInteger();
        /** Whether SAMPLE segments are drawn here (else their logits go back, as with draws on the host). */
        final boolean draws;
        /** Whether a fed SAMPLE segment may be drawn later ({@link Backend#drawsLater}). */
        final boolean later;
        int[] previous = new int[0];
        /** Submitted steps not read yet. */
        int unread;

        Feeding(boolean draws, boolean later) {
            this.draws = draws;
            this.later = later;
        }

        Feeding(boolean draws) {
            this(draws, false);
        }

        Feeding() {
            this(true);
        }

        @Override
        public boolean drawsLater() {
            return later;
        }

        @Override
        public String description() {
            return "cpu, tokens fed to the next step";
        }

        @Override
        public boolean feedsTokensOnDevice(Batch.Logits logits) {
            return logits == Batch.Logits.GREEDY || (logits == Batch.Logits.SAMPLE && draws);
        }

        /** SAMPLE segments drawn here get their logprobs with the token, as the GPU computes them. */
        @Override
        public boolean drawsLogprobs() {
            return draws;
        }

        @Override
        public List<Batch.Output> forward(Batch batch) {
            return submit(batch).outputs();
        }

        @Override
        public Submitted submit(Batch batch) {
            for (int s = 0; s < batch.size(); s++) {
                Batch.Logits logits = batch.segment(s).logits();
                if (unread > 0 && (logits == Batch.Logits.LAST || logits == Batch.Logits.ALL
                        || (logits == Batch.Logits.SAMPLE && !draws))) {
                    // As the GPU's: logits come back only from a step nothing is queued before.
                    throw new IllegalStateException("a step returning logits queued behind another");
                }
            }
            unread++;
            List<Batch.Segment> resolved = new ArrayList<>(batch.size());
            for (int s = 0; s < batch.size(); s++) {
                Batch.Segment segment = batch.segment(s);
                if (segment.fed()) {
                    int token = previous[segment.previousSegment()];
                    assertThat(token).as("the fed segment's source picked a greedy token").isGreaterThanOrEqualTo(0);
                    segment = new Batch.Segment(segment.sequence(), new int[] {token}, 0, segment.logits(),
                            segment.draw());
                    fedSegments.incrementAndGet();
                    if (segment.draw() != null && segment.draw().logprobs() >= 0) {
                        fedWithLogprobs.incrementAndGet();
                    }
                }
                resolved.add(segment);
            }
            List<Batch.Output> outputs = new ArrayList<>(super.forward(new Batch(resolved)));
            boolean drawsLater = false;
            for (int s = 0; s < batch.size(); s++) {
                drawsLater |= batch.segment(s).drawnLater();
            }
            boolean drawnAtOnce = !drawsLater;
            if (drawnAtOnce) {
                drawAll(batch, outputs, null);
            }
            return new Submitted() {
                boolean drawn = drawnAtOnce;

                @Override
                public void draw(List<Batch.Draw> laterDraws) {
                    assertThat(drawn).as("a step drawn once").isFalse();
                    drawn = true;
                    drawAll(batch, outputs, laterDraws);
                }

                @Override
                public List<Batch.Output> outputs() {
                    if (!drawn) {
                        draw(Collections.nCopies(batch.size(), null));
                    }
                    unread--;
                    return outputs;
                }
            };
        }

        /** Draws the SAMPLE segments here ({@code laterDraws} in place of the LATER ones), and keeps the tokens to feed. */
        private void drawAll(Batch batch, List<Batch.Output> outputs, List<Batch.Draw> laterDraws) {
            previous = new int[batch.size()];
            Arrays.fill(previous, -1);
            for (int s = 0; s < batch.size(); s++) {
                Batch.Segment segment = batch.segment(s);
                if (segment.logits() == Batch.Logits.SAMPLE && draws) {
                    Batch.Draw draw = segment.draw();
                    if (draw.later()) {
                        drawnLater.incrementAndGet();
                        draw = laterDraws.get(s);
                    }
                    float[] logits = outputs.get(s).logits();
                    int token = draw == null ? SamplerTest.argmax(logits) : drawHere(logits, draw);
                    outputs.set(s, new Batch.Output(null, token,
                            draw == null ? null : drawnLogprobs(logits, token, draw.logprobs())));
                }
                if (feedsTokensOnDevice(segment.logits())) {
                    previous[s] = outputs.get(s).token();
                }
            }
        }

        /**
         * Drawn here with the draw's own number, as the device draws: the draw's mask (a grammar's,
         * allowed_token_ids), its bias (logit_bias, and -infinity for what min_tokens holds back and
         * bad words forbid), the repetition penalty on the ids seen and the presence and frequency
         * penalties on the ids counted, then temperature, top-k, top-p and min-p.
         */
        private static int drawHere(float[] logits, Batch.Draw draw) {
            float[] adjusted = TokenBits.masked(logits, draw.allowedBits());
            for (int i = 0; i < draw.biasIds().length; i++) {
                adjusted[draw.biasIds()[i]] += draw.biases()[i];
            }
            for (int id : draw.seenIds()) {
                adjusted[id] = adjusted[id] > 0 ? adjusted[id] / draw.repetitionPenalty()
                        : adjusted[id] * draw.repetitionPenalty();
            }
            for (int i = 0; i < draw.countIds().length; i++) {
                adjusted[draw.countIds()[i]] -= draw.countPenalties()[i];
            }
            SamplingParams params = SamplingParams.builder().temperature(draw.temperature()).topK(draw.topK())
                    .topP(draw.topP()).minP(draw.minP()).build();
            return new Sampler(params).sample(adjusted, new TokenHistory(new int[0]), draw.uniform());
        }
    }

    /** The log-probabilities of the logits before the draw's bias, as the host computes them; null for none. */
    static Batch.DrawnLogprobs drawnLogprobs(float[] logits, int token, int wanted) {
        if (wanted < 0) {
            return null;
        }
        float[] distribution = Sampler.logSoftmax(logits);
        List<TokenLogprob> top = Sampler.topLogprobs(distribution, wanted);
        return new Batch.DrawnLogprobs(distribution[token], top.stream().mapToInt(TokenLogprob::id).toArray(),
                toFloats(top));
    }

    private static float[] toFloats(List<TokenLogprob> top) {
        float[] values = new float[top.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = top.get(i).logprob();
        }
        return values;
    }

    /**
     * Requests arriving at random, some cancelled ({@link RandomArrivals}), with steps queued ahead:
     * each ends as it does alone on the CPU engine with steps one at a time, and steps were fed, some
     * of them with logprobs.
     */
    @Test
    void randomArrivalsStopsAndCancellationsEndAsStepsRunOneAtATime() throws InterruptedException {
        LoadedModel model = TestModels.load("granitemoehybrid");
        Feeding backend = new Feeding();
        RandomArrivals.assertEachEndsAsAlone("granitemoehybrid", () -> Engine.start(model, EngineTest.OPS,
                EngineTest.SMALL), () -> Engine.start(model, backend, EngineTest.SMALL), 1e-4, engine -> { });
        assertThat(backend.fedSegments.get()).isGreaterThan(0);
        assertThat(backend.fedWithLogprobs.get()).isGreaterThan(0);
    }

    /** The greedy tokens of one request on the CPU engine, steps one at a time. */
    private static List<Integer> plainTokens(LoadedModel model, int[] prompt, int maxTokens) {
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            return EngineRuns.run(engine, greedy(prompt, maxTokens, -1)).tokens();
        }
    }

    /** tokens[index], checked to be its first occurrence, so that a request stopping on it stops there. */
    private static int stopIdAt(List<Integer> tokens, int index) {
        int stopId = tokens.get(index);
        assertThat(tokens.subList(0, index)).as("the stop id's first occurrence").doesNotContain(stopId);
        return stopId;
    }

    private static List<EngineRuns.Outcome> runTogether(Engine engine, List<EngineRequest> requests) {
        List<RequestStream> streams = requests.stream().map(engine::submit).toList();
        return streams.stream().map(EngineRuns::collect).toList();
    }

    @Test
    void requestsQueuedAheadEndAsStepsRunOneAtATime() throws InterruptedException {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        int[] stopPrompt = prompt(vocab, 21, 7);
        // A request whose fifth token is a stop id, which ends it while the step after it is queued.
        int stopId = stopIdAt(plainTokens(model, stopPrompt, 12), 4);
        List<EngineRequest> requests = List.of(greedy(prompt(vocab, 23, 1), 9, -1),
                greedy(prompt(vocab, 40, 2), 17, -1), greedy(prompt(vocab, 5, 3), 1, -1),
                new EngineRequest(stopPrompt, SamplingParams.greedy().withMaxTokens(12).withStopTokenIds(Set.of(stopId)),
                        true, -1, -1),
                greedy(prompt(vocab, 33, 4), 5, 2), greedy(prompt(vocab, 12, 5), 6, -1));
        List<EngineRuns.Outcome> expected;
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            expected = runTogether(engine, requests);
        }
        Feeding backend = new Feeding();
        try (Engine engine = Engine.start(model, backend, EngineTest.SMALL)) {
            List<EngineRuns.Outcome> outcomes = runTogether(engine, requests);
            for (int i = 0; i < requests.size(); i++) {
                assertThat(outcomes.get(i).failed()).as("request %d", i).isNull();
                assertThat(outcomes.get(i).tokens()).as("request %d", i).isEqualTo(expected.get(i).tokens());
                assertThat(outcomes.get(i).logprobs()).hasSameSizeAs(expected.get(i).logprobs());
                assertThat(outcomes.get(i).finished().reason()).isEqualTo(expected.get(i).finished().reason());
                // The paths that served it name its decodes too, queued ahead or not.
                assertThat(outcomes.get(i).finished().paths()).as("request %d", i)
                        .isEqualTo(expected.get(i).finished().paths());
            }
            assertThat(outcomes.get(3).tokens()).hasSize(5).endsWith(stopId);
            assertThat(outcomes.get(3).finished().stopTokenId()).isEqualTo(stopId);
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.kvBlocksInUse()).as("blocks left behind").isZero();
            assertThat(stats.stateSlotsInUse()).as("slots left behind").isZero();
        }
        // How many depends on when the requests reach the step thread (an arrival drains the queue).
        assertThat(backend.fedSegments.get()).as("decode steps queued ahead").isGreaterThan(0);
    }

    @ParameterizedTest(name = "drawn by the backend: {0}")
    @ValueSource(booleans = {true, false})
    void sampledRequestsQueuedAheadDrawTheSameTokens(boolean draws) throws InterruptedException {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        SamplingParams sampled = SamplingParams.builder().temperature(0.8).topP(0.95).maxTokens(15).build();
        List<EngineRequest> requests = List.of(
                new EngineRequest(prompt(vocab, 23, 21), sampled.withSeed(5L), true, -1, -1),
                new EngineRequest(prompt(vocab, 31, 22), sampled.withSeed(6L).withTopK(20), true, -1, -1),
                new EngineRequest(prompt(vocab, 9, 23), sampled.withSeed(7L).withMinP(0.05).withTopP(1.0), true, -1, -1),
                greedy(prompt(vocab, 14, 24), 11, -1));
        List<EngineRuns.Outcome> expected;
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            expected = runTogether(engine, requests);
        }
        Feeding backend = new Feeding(draws);
        try (Engine engine = Engine.start(model, backend, EngineTest.SMALL)) {
            List<EngineRuns.Outcome> outcomes = runTogether(engine, requests);
            for (int i = 0; i < requests.size(); i++) {
                assertThat(outcomes.get(i).failed()).as("request %d", i).isNull();
                assertThat(outcomes.get(i).tokens()).as("request %d", i).isEqualTo(expected.get(i).tokens());
            }
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.kvBlocksInUse()).isZero();
            assertThat(stats.stateSlotsInUse()).isZero();
        }
        if (draws) {
            assertThat(backend.fedSegments.get()).isGreaterThan(0);
        }
        // Without draws here, a step with a sampled request returns its logits: the engine must
        // not have queued it behind another (the backend throws, and the requests would fail).
    }

    /**
     * Requests whose draws depend on their last token (a grammar, penalties, a bad word of two tokens,
     * a thinking budget about to force its end tag) run in steps queued ahead with their draws made later ({@link Batch.Draw#LATER}), beside requests
     * drawn ahead and greedy ones: each ends as with steps run one at a time, its logprobs too, and the
     * cache is left empty. Without {@link Backend#drawsLater} no step is drawn later.
     */
    @ParameterizedTest(name = "drawn later: {0}")
    @ValueSource(booleans = {true, false})
    void requestsDrawnLaterEndAsStepsRunOneAtATime(boolean later) throws InterruptedException {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        OutputGrammar regex = OutputGrammar.regex("(yes|no)-[a-f0-9]{2,6}!?");
        List<SamplingParams> settings = List.of(
                SamplingParams.greedy().withMaxTokens(16).withGrammar(regex),
                SamplingParams.greedy().withTemperature(0.9).withSeed(41L).withMaxTokens(16).withGrammar(regex),
                SamplingParams.greedy().withRepetitionPenalty(1.4).withMaxTokens(14),
                SamplingParams.greedy().withTemperature(1.0).withSeed(42L).withPresencePenalty(0.5)
                        .withFrequencyPenalty(0.3).withMaxTokens(14),
                SamplingParams.greedy().withBadWords(List.of(List.of(5, 9), List.of(3, 4))).withMaxTokens(12),
                SamplingParams.greedy().withTemperature(0.8).withTopP(0.9).withSeed(43L).withMaxTokens(12),
                SamplingParams.greedy().withMaxTokens(10),
                SamplingParams.greedy().withRepetitionPenalty(1.2).withMinTokens(3)
                        .withStopTokenIds(Set.of(7)).withMaxTokens(12),
                // Thinking budgets: greedy and drawn ahead until a token before the end tag is forced.
                SamplingParams.greedy().withMaxTokens(14).withThinkingBudget(new ThinkingBudget(5, "<think>", "</think>",
                        true)),
                SamplingParams.greedy().withTemperature(0.9).withSeed(44L).withMaxTokens(14)
                        .withThinkingBudget(new ThinkingBudget(3, "<think>", "</think>", true)),
                SamplingParams.greedy().withMaxTokens(12).withThinkingBudget(new ThinkingBudget(0, "<think>", "</think>",
                        true)));
        List<EngineRequest> requests = new ArrayList<>();
        for (int i = 0; i < settings.size(); i++) {
            requests.add(new EngineRequest(prompt(vocab, 9 + 5 * i, 900 + i), settings.get(i), true, i % 3 == 0 ? 2 : -1,
                    -1));
        }
        List<EngineRuns.Outcome> expected;
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            expected = requests.stream().map(request -> EngineRuns.run(engine, request)).toList();
        }
        Feeding backend = new Feeding(true, later);
        try (Engine engine = Engine.start(model, backend, EngineTest.SMALL)) {
            List<EngineRuns.Outcome> outcomes = runTogether(engine, requests);
            for (int i = 0; i < requests.size(); i++) {
                String what = "request " + i + " " + settings.get(i);
                assertThat(outcomes.get(i).failed()).as(what).isNull();
                assertThat(outcomes.get(i).tokens()).as(what).isEqualTo(expected.get(i).tokens());
                assertThat(outcomes.get(i).finished().reason()).as(what).isEqualTo(expected.get(i).finished().reason());
                EngineTest.assertSameLogprobs(outcomes.get(i).logprobs(), expected.get(i).logprobs(), 1e-4);
            }
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.kvBlocksInUse()).isZero();
            assertThat(stats.stateSlotsInUse()).isZero();
        }
        if (later) {
            assertThat(backend.drawnLater.get()).as("segments drawn later").isGreaterThan(0);
        } else {
            assertThat(backend.drawnLater.get()).isZero();
        }
    }

    @Test
    void aRequestCancelledWhileStepsRunAheadEndsAndReturnsItsCache() throws InterruptedException {
        LoadedModel model = TestModels.load("granitemoehybrid");
        Feeding backend = new Feeding();
        try (Engine engine = Engine.start(model, backend, EngineTest.SMALL)) {
            RequestStream stream = engine.submit(greedy(prompt(model.config().vocabSize(), 19, 31), 200, -1));
            for (int i = 0; i < 5; i++) {
                assertThat(stream.next(60_000)).isInstanceOf(EngineEvent.Token.class);
            }
            stream.cancel();
            EngineRuns.Outcome rest = EngineRuns.collect(stream);
            assertThat(rest.failed()).isNotNull();
            assertThat(rest.failed().reason()).isEqualTo(EngineEvent.Failed.Reason.CANCELLED);
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.kvBlocksInUse()).isZero();
            assertThat(stats.stateSlotsInUse()).isZero();
            // The engine goes on: the next request is served.
            assertThat(EngineRuns.run(engine, greedy(prompt(model.config().vocabSize(), 7, 32), 4, -1)).tokens())
                    .hasSize(4);
        }
        assertThat(backend.fedSegments.get()).isGreaterThanOrEqualTo(4);
    }

    /**
     * A request ended by its seventh token while the step after it is queued: a stop id (the last
     * token of its output) or an end-of-sequence id (left out of its output, but fed on by the step
     * queued behind it all the same). Either way the next turn, which holds the id, finds it cached.
     */
    @ParameterizedTest(name = "ended by an end-of-sequence id: {0}")
    @ValueSource(booleans = {false, true})
    void aRequestEndingWhileTheNextStepIsQueuedLeavesAReusablePrefix(boolean endOfSequence, @TempDir Path folder) {
        LoadedModel fixture = TestModels.load("granitemoehybrid");
        int vocab = fixture.config().vocabSize();
        int[] first = prompt(vocab, 37, 11);
        List<Integer> plain = plainTokens(fixture, first, 20);
        int stopId = stopIdAt(plain, 6);
        EngineRequest firstTurn = endOfSequence
                ? new EngineRequest(first, SamplingParams.greedy().withMaxTokens(20), false, -1, -1)
                : new EngineRequest(first, SamplingParams.greedy().withMaxTokens(20).withStopTokenIds(Set.of(stopId)),
                        true, -1, -1);
        // The next turn: the first prompt, its answer, the id that ended it, then more.
        int[] answer = plain.subList(0, 7).stream().mapToInt(Integer::intValue).toArray();
        int[] second = concat(concat(first, answer), prompt(vocab, 9, 12));
        // The fixture's weights, with the stop id as their end-of-sequence token where that ends the turn.
        try (LoadedModel model = EngineRuns.withEndOfSequence("granitemoehybrid", endOfSequence ? stopId : 0, folder)) {
            EngineRuns.Outcome expected;
            try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withPrefixCaching(false))) {
                expected = EngineRuns.run(engine, greedy(second, 8, -1));
            }
            Feeding backend = new Feeding();
            try (Engine engine = Engine.start(model, backend, EngineTest.SMALL)) {
                EngineRuns.Outcome turn = EngineRuns.run(engine, firstTurn);
                assertThat(turn.tokens()).isEqualTo(plain.subList(0, endOfSequence ? 6 : 7));
                assertThat(turn.finished().reason()).isEqualTo(FinishReason.STOP);
                assertThat(turn.finished().stopTokenId()).isEqualTo(endOfSequence ? null : stopId);
                EngineRuns.Outcome next = EngineRuns.run(engine, greedy(second, 8, -1));
                assertThat(next.tokens()).isEqualTo(expected.tokens());
                // Everything up to and with the ending id, which the step queued behind the end computed.
                assertThat(next.finished().usage().cachedPromptTokens()).isEqualTo(first.length + answer.length);
            }
            // Every token after the first of each turn was fed: 6 in the first turn and the row queued
            // behind its ending id, then 7 in the second.
            assertThat(backend.fedSegments.get()).isEqualTo(6 + 1 + 7);
        }
    }
}
