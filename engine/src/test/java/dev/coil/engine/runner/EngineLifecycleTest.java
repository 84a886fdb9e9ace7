package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.greedy;
import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.bench.RandomCheckpoint;
import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.TestModels;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Preemption, cancellation, overload and cache accounting of the engine, on the hybrid fixture. */
class EngineLifecycleTest {

    static final String FIXTURE = "granitemoehybrid";

    /** A --cache-memory that gives exactly {@code blocks} KV blocks with {@code sequences} slots. */
    static String budgetForBlocks(LoadedModel model, EngineOptions options, int blocks) {
        long low = 1;
        long high = 1L << 34;
        while (low < high) {
            long middle = (low + high) / 2;
            CacheSizing sizing = CacheSizing.plan(middle, options.blockSize(), options.kvDtype(),
                    options.maxSequences(), model.config().contextLength(), options.prefixCaching(),
                    options.snapshotIntervalBlocks(), model.config().blocks(), model.model().newLayerStates());
            if (sizing.blocks() >= blocks && sizing.slots() == options.maxSequences()) {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        return Long.toString(low);
    }

    @Test
    void preemptedRequestsResumeWithUnchangedOutput() throws InterruptedException {
        LoadedModel model = TestModels.load(FIXTURE);
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            prompts.add(prompt(model.config().vocabSize(), 30 + i, 300 + i));
        }
        List<EngineRuns.Outcome> uninterrupted = new ArrayList<>();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            for (int[] ids : prompts) {
                uninterrupted.add(run(engine, greedy(ids, 40, 3)));
            }
        }
        EngineOptions tight = EngineTest.SMALL.withMaxSequences(4).withPrefixCaching(false);
        tight = tight.withCacheMemory(budgetForBlocks(model, tight, 12)); // 4 × 5 blocks needed, 12 exist
        SteppedOps stepped = new SteppedOps(EngineTest.OPS);
        try (Engine engine = Engine.start(model, stepped.ops(), tight)) {
            assertThat(engine.cacheSizing().blocks()).isEqualTo(12);
            List<RequestStream> streams = new ArrayList<>();
            stepped.hold(); // all four are waiting before the first step ends, so the cache must run short
            try {
                for (int[] ids : prompts) {
                    streams.add(engine.submit(greedy(ids, 40, 3)));
                }
            } finally {
                stepped.release();
            }
            for (int i = 0; i < streams.size(); i++) {
                EngineRuns.Outcome outcome = EngineRuns.collect(streams.get(i));
                assertThat(outcome.tokens()).as("request %d", i).isEqualTo(uninterrupted.get(i).tokens());
                EngineTest.assertSameLogprobs(outcome.logprobs(), uninterrupted.get(i).logprobs(), 1e-4);
            }
            EngineStats after = EngineRuns.settledStats(engine);
            assertThat(after.preemptions()).isPositive();
            assertThat(after.kvBlocksInUse()).isZero();
            assertThat(after.stateSlotsInUse()).isZero();
        }
    }

    @Test
    void cancelReturnsEveryBlockAndSlotAndSparesTheOthers() throws Exception {
        LoadedModel model = TestModels.load(FIXTURE);
        SteppedOps stepped = new SteppedOps(EngineTest.OPS);
        try (Engine engine = Engine.start(model, stepped.ops(), EngineTest.SMALL)) {
            EngineStats initial = engine.stats();
            // The step thread is held between op calls while the cancelled requests get their first
            // token, so that none of them can run to its 60th token before its cancel arrives.
            stepped.hold();
            List<RequestStream> streams = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                streams.add(engine.submit(greedy(prompt(model.config().vocabSize(), 20 + 7 * i, 40 + i), 60, -1)));
            }
            try {
                boolean[] started = new boolean[6];
                int waitingForFirstToken = 3;
                while (waitingForFirstToken > 0) {
                    assertThat(stepped.advance(30_000)).as("the step thread comes back for its next op").isTrue();
                    for (int i = 0; i < 6; i += 2) {
                        EngineEvent event = started[i] ? null : streams.get(i).next(0);
                        if (event != null) {
                            assertThat(event).isInstanceOf(EngineEvent.Token.class);
                            started[i] = true;
                            waitingForFirstToken--;
                        }
                    }
                }
                for (int i = 0; i < 6; i += 2) {
                    streams.get(i).cancel();
                }
            } finally {
                stepped.release();
            }
            for (int i = 0; i < 6; i++) {
                EngineRuns.Outcome outcome = EngineRuns.collect(streams.get(i));
                if (i % 2 == 0) {
                    assertThat(outcome.failed()).as("request %d ends cancelled", i).isNotNull();
                    assertThat(outcome.failed().reason()).isEqualTo(EngineEvent.Failed.Reason.CANCELLED);
                    assertThat(outcome.tokens()).as("request %d stops short", i).hasSizeLessThan(59);
                } else {
                    assertThat(outcome.finished().usage().completionTokens()).isEqualTo(60);
                }
            }
            EngineStats after = EngineRuns.settledStats(engine);
            assertThat(after.kvBlocksInUse()).isEqualTo(initial.kvBlocksInUse()).isZero();
            assertThat(after.stateSlotsInUse()).isEqualTo(initial.stateSlotsInUse()).isZero();
            assertThat(after.runningRequests() + after.waitingRequests()).isZero();
        }
    }

    @Test
    void aFullWaitingQueueRefusesWithOverloaded() {
        LoadedModel model = TestModels.load(FIXTURE);
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withMaxWaiting(0))) {
            assertThatThrownBy(() -> engine.submit(greedy(new int[] {1, 2, 3}, 2, -1)))
                    .isInstanceOf(EngineOverloadedException.class).hasMessageContaining("overloaded");
        }
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withMaxWaiting(2)
                .withMaxSequences(1))) {
            List<RequestStream> accepted = new ArrayList<>();
            int refused = 0;
            for (int i = 0; i < 40; i++) {
                try {
                    accepted.add(engine.submit(greedy(prompt(model.config().vocabSize(), 50, i), 30, -1)));
                } catch (EngineOverloadedException e) {
                    refused++;
                }
            }
            assertThat(refused).isPositive();
            for (RequestStream stream : accepted) {
                assertThat(EngineRuns.collect(stream).finished()).isNotNull();
            }
        }
    }

    @Test
    void requestsTooLongForTheContextFailAtSubmitNamingTheParameter() {
        LoadedModel model = TestModels.load(FIXTURE);
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            int window = engine.contextLength();
            assertThatThrownBy(() -> engine.submit(greedy(prompt(model.config().vocabSize(), 20, 1), window, -1)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("max_tokens");
            assertThatThrownBy(() -> engine.submit(greedy(new int[] {1, 100_000}, 1, -1)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("outside the vocabulary");
        }
    }

    /**
     * vLLM's --max-model-len: the window served is the one given, for the limits and for what a
     * request without max_tokens generates; one past the model's window is refused at start.
     */
    @Test
    void maxModelLengthServesAShorterWindow() {
        LoadedModel model = TestModels.load(FIXTURE);
        int vocab = model.config().vocabSize();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withMaxModelLength(48))) {
            assertThat(engine.contextLength()).isEqualTo(48);
            assertThatThrownBy(() -> engine.submit(greedy(prompt(vocab, 40, 1), 10, -1)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("max_tokens: the prompt (40 tokens) plus max_tokens (10) exceeds the served context "
                            + "window (--max-model-len) of 48 tokens");
            assertThatThrownBy(() -> engine.submit(greedy(prompt(vocab, 49, 2), 0, -1)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("the prompt (49 tokens)");
            EngineRuns.Outcome unlimited = run(engine, new EngineRequest(prompt(vocab, 40, 3),
                    SamplingParams.greedy().withMaxTokens(SamplingParams.UNLIMITED_TOKENS), true, -1, -1));
            assertThat(unlimited.tokens()).hasSize(8);
            assertThat(unlimited.finished().reason()).isEqualTo(FinishReason.LENGTH);
        }
        int window = model.config().contextLength();
        assertThat(window).isPositive();
        assertThatThrownBy(() -> Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withMaxModelLength(window + 1)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("--max-model-len (" + (window + 1) + ") exceeds the model's context window of " + window
                        + " tokens (max_position_embeddings in config.json)");
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withMaxModelLength(window))) {
            assertThat(engine.contextLength()).isEqualTo(window);
        }
    }

    @Test
    void aPromptFillingTheContextIsScoredWithMaxTokensZero() {
        LoadedModel model = TestModels.load(FIXTURE);
        int window = model.config().contextLength();
        int[] ids = prompt(model.config().vocabSize(), window, 3);
        ScoreResult expected = new Scorer(model, EngineTest.OPS).score(ids, 0);
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withKvDtype(DType.F32))) {
            EngineRuns.Outcome scored = run(engine, new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(0),
                    true, -1, 0));
            assertThat(scored.failed()).isNull();
            assertThat(scored.tokens()).isEmpty();
            assertThat(scored.finished().reason()).isEqualTo(FinishReason.LENGTH);
            assertThat(scored.finished().usage().promptTokens()).isEqualTo(window);
            List<EngineEvent.PositionLogprobs> positions = scored.promptLogprobs().positions();
            assertThat(positions).hasSize(window - 1);
            for (int i = 0; i < positions.size(); i++) {
                assertThat(positions.get(i).chosen().id()).isEqualTo(ids[i + 1]);
                assertThat((double) positions.get(i).chosen().logprob()).as("prompt token %d", i + 1)
                        .isCloseTo(expected.logprobs()[i + 1], within(1e-4));
            }
            // What does not fit is still refused: the prompt alone, or the prompt and anything to generate.
            int[] longer = prompt(model.config().vocabSize(), window + 1, 4);
            assertThatThrownBy(() -> engine.submit(greedy(longer, 0, -1)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("the prompt (" + (window + 1));
            assertThatThrownBy(() -> engine.submit(greedy(ids, 1, -1)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("max_tokens");
            assertThatThrownBy(() -> engine.submit(new EngineRequest(ids, SamplingParams.greedy(), true, -1, -1)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("the prompt (" + window);
        }
    }

    @Test
    void finalEventNamesThePathsThatServedTheRequest() {
        try (Engine engine = Engine.start(TestModels.load(FIXTURE), EngineTest.OPS, EngineTest.SMALL)) {
            EngineRuns.Outcome outcome = run(engine, greedy(new int[] {5, 6, 7, 8, 9}, 4, -1));
            assertThat(outcome.finished().paths()).containsExactly("flash", "ssd-scan", "ssm-recurrence");
        }
        try (Engine engine = Engine.start(TestModels.load("mamba2"), EngineTest.OPS, EngineTest.SMALL)) {
            EngineRuns.Outcome outcome = run(engine, greedy(new int[] {5, 6, 7, 8, 9}, 1, -1));
            assertThat(outcome.finished().paths()).containsExactly("ssd-scan");
        }
    }

    @Test
    void maxSequencesIsClampedToWhatTheBudgetHoldsWithAWarning() {
        LoadedModel model = TestModels.load(FIXTURE);
        CacheSizing sizing = CacheSizing.plan(200_000, 16, DType.BF16, 64, 256, true, 16, model.config().blocks(),
                model.model().newLayerStates());
        assertThat(sizing.slots()).isBetween(1, 63);
        assertThat(sizing.warnings()).anySatisfy(w -> assertThat(w).startsWith("--max-seqs lowered from 64 to"));
    }

    @Test
    void prefixHitOnAnAttentionOnlyModelGivesTheLogitsOfAMiss(@TempDir Path folder) throws IOException {
        RandomCheckpoint.Shape shape = new RandomCheckpoint.Shape(256, 32, 2, 1, 4, 2, 2, 16, 16, 64);
        RandomCheckpoint.write(folder, shape, DType.F32, 9);
        try (LoadedModel model = LoadedModel.load(folder)) {
            int[] first = prompt(256, 50, 1);
            int[] second = EngineRuns.concat(java.util.Arrays.copyOf(first, 40), prompt(256, 9, 2));
            EngineRuns.Outcome miss;
            try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withPrefixCaching(false))) {
                miss = run(engine, greedy(second, 5, 5));
            }
            try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
                run(engine, greedy(first, 2, -1));
                EngineRuns.Outcome hit = run(engine, greedy(second, 5, 5));
                assertThat(hit.finished().usage().cachedPromptTokens()).isEqualTo(32);
                assertThat(hit.finished().paths()).containsExactly("flash");
                assertThat(engine.stats().stateSlotsTotal()).isZero();
                EngineTest.assertSameLogprobs(hit.logprobs(), miss.logprobs(), 2e-5);
            }
        }
    }
}
