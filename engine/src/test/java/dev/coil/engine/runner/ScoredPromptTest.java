package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.model.Batch;
import dev.coil.engine.model.TestModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Prompt logprobs scored by the backend ({@link Backend#scoresPrompts}, as the GPU's does): the engine
 * hands each prompt chunk's next tokens with the chunk and takes back scores and the last row's
 * logits; requests end with the prompt logprobs, ranks, tokens and logprobs of the engine that reads
 * every row's logits, in one chunk or several: the CPU's logits of two runs differ in their last
 * places (RunAheadTest), so logprobs agree to {@link #TOLERANCE} and ranks but for near ties, and
 * what the engine delivers is exactly what the backend scored.
 */
class ScoredPromptTest {

    private static final double TOLERANCE = 1e-4;


    /** The CPU backend scoring prompt rows from its own logits, returning the last row's logits alone. */
    static final class Scoring extends DeviceGreedyPathTest.TokensOnly {
        final AtomicInteger scoredRows = new AtomicInteger();
        /** Every row scored, as "logprob bits/rank", for the rows a request's prompt logprobs came from. */
        final Set<String> scores = ConcurrentHashMap.newKeySet();

        @Override
        public boolean scoresPrompts() {
            return true;
        }

        @Override
        public List<Batch.Output> forward(Batch batch) {
            List<Batch.Output> outputs = new ArrayList<>(super.forward(batch));
            for (int s = 0; s < batch.size(); s++) {
                Batch.PromptScoring scoring = batch.segment(s).scoring();
                if (scoring == null) {
                    continue;
                }
                float[] logits = outputs.get(s).logits();
                int rows = scoring.tokens().length;
                int vocab = logits.length / rows;
                List<Batch.ScoredRow> scored = new ArrayList<>();
                for (int r = 0; r < rows; r++) {
                    float[] distribution = Sampler.logSoftmax(Arrays.copyOfRange(logits, r * vocab, (r + 1) * vocab));
                    List<TokenLogprob> top = Sampler.topLogprobs(distribution, scoring.top());
                    int token = scoring.tokens()[r];
                    Batch.ScoredRow row = new Batch.ScoredRow(token < 0 ? Float.NaN : distribution[token],
                            token < 0 ? 0 : Sampler.rank(distribution, token),
                            top.stream().mapToInt(TokenLogprob::id).toArray(), logprobsOf(top));
                    scored.add(row);
                    scores.add(key(row.logprob(), row.rank()));
                }
                scoredRows.addAndGet(rows);
                outputs.set(s, new Batch.Output(Arrays.copyOfRange(logits, (rows - 1) * vocab, rows * vocab), -1,
                        null, scored));
            }
            return outputs;
        }

        static String key(float logprob, int rank) {
            return Float.floatToRawIntBits(logprob) + "/" + rank;
        }

        private static float[] logprobsOf(List<TokenLogprob> top) {
            float[] values = new float[top.size()];
            for (int i = 0; i < values.length; i++) {
                values[i] = top.get(i).logprob();
            }
            return values;
        }
    }

    @Test
    void promptsScoredByTheBackendEqualPromptsScoredFromTheirLogits() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        List<EngineRequest> requests = List.of(
                new EngineRequest(prompt(vocab, 37, 1), SamplingParams.greedy().withMaxTokens(4), true, 2, 0),
                new EngineRequest(prompt(vocab, 23, 2), SamplingParams.greedy().withTemperature(0.9).withSeed(5L)
                        .withMaxTokens(4), true, -1, 5),
                new EngineRequest(prompt(vocab, 41, 3), SamplingParams.greedy().withMaxTokens(3), true, -1, 20),
                new EngineRequest(prompt(vocab, 19, 4), SamplingParams.greedy().withMaxTokens(5), true, 1, -1),
                new EngineRequest(prompt(vocab, 1, 5), SamplingParams.greedy().withMaxTokens(0), true, -1, 3));
        for (int budget : new int[] {256, 16}) {
            EngineOptions options = EngineTest.SMALL.withMaxBatchedTokens(budget);
            List<EngineRuns.Outcome> expected = runAll(Engine.start(model, EngineTest.OPS, options), requests);
            Scoring backend = new Scoring();
            List<EngineRuns.Outcome> actual = runAll(Engine.start(model, backend, options), requests);
            assertThat(backend.scoredRows.get()).as("budget %d: rows scored by the backend", budget)
                    .isEqualTo(37 + 23 + 41 + 1);
            for (int i = 0; i < requests.size(); i++) {
                String what = "budget " + budget + ", request " + i;
                assertThat(actual.get(i).tokens()).as(what).isEqualTo(expected.get(i).tokens());
                EngineTest.assertSameLogprobs(actual.get(i).logprobs(), expected.get(i).logprobs(), TOLERANCE);
                if (requests.get(i).promptLogprobs() < 0) {
                    assertThat(actual.get(i).promptLogprobs()).as(what).isNull();
                    continue;
                }
                List<EngineEvent.PositionLogprobs> scored = actual.get(i).promptLogprobs().positions();
                List<EngineEvent.PositionLogprobs> read = expected.get(i).promptLogprobs().positions();
                assertThat(scored).as(what).hasSize(requests.get(i).promptLength() - 1);
                EngineTest.assertSameLogprobs(scored, read, TOLERANCE);
                for (int p = 0; p < scored.size(); p++) {
                    EngineEvent.PositionLogprobs position = scored.get(p);
                    assertThat(backend.scores).as("%s, position %d: as scored", what, p + 1)
                            .contains(Scoring.key(position.chosen().logprob(), position.rank()));
                    assertThat(position.rank()).as("%s, position %d: rank", what, p + 1)
                            .isCloseTo(read.get(p).rank(), org.assertj.core.api.Assertions.within(2)).isPositive();
                }
            }
        }
    }

    private static List<EngineRuns.Outcome> runAll(Engine engine, List<EngineRequest> requests) {
        try (engine) {
            return requests.stream().map(request -> EngineRuns.run(engine, request)).toList();
        }
    }
}
