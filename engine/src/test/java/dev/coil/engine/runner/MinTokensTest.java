package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.model.TestModels;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * vLLM's min_tokens: until that many tokens are generated, the end-of-sequence and stop token ids
 * cannot be drawn and stop strings are not looked for; from then on they end the request as usual.
 */
class MinTokensTest {

    private static final String FIXTURE = "granitemoehybrid";

    /**
     * An end-of-sequence token all but forced by a +100 bias ends a request at once; with min_tokens
     * 3 it ends the request right after the third token, greedy or sampled: on the CPU backend (the
     * host's sampler) and on one that draws tokens itself from each step's {@link
     * dev.coil.engine.model.Batch.Draw}, with steps queued ahead, as the GPU's does.
     */
    @ParameterizedTest(name = "draws on the backend: {0}")
    @ValueSource(booleans = {false, true})
    void theEndOfSequenceTokenWaitsForMinTokens(boolean backendDraws) {
        LoadedModel model = TestModels.load(FIXTURE);
        int endId = model.endOfSequenceIds().iterator().next();
        int[] ids = prompt(model.config().vocabSize(), 17, 4);
        List<SamplingParams> settings = List.of(SamplingParams.greedy(),
                SamplingParams.builder().temperature(1).seed(9L).build());
        RunAheadTest.Feeding drawing = new RunAheadTest.Feeding();
        try (Engine engine = backendDraws ? Engine.start(model, drawing, EngineTest.SMALL)
                : Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            for (SamplingParams base : settings) {
                SamplingParams forced = base.withMaxTokens(10).withLogitBias(Map.of(endId, 100f));
                EngineRuns.Outcome immediate = run(engine, new EngineRequest(ids, forced, false, -1, -1));
                assertThat(immediate.tokens()).as("%s", base).isEmpty();
                assertThat(immediate.finished().reason()).isEqualTo(FinishReason.STOP);

                EngineRuns.Outcome held = run(engine, new EngineRequest(ids, forced.withMinTokens(3), false, -1, -1));
                assertThat(held.tokens()).as("%s", base).hasSize(3).doesNotContain(endId);
                assertThat(held.finished().reason()).isEqualTo(FinishReason.STOP);
                assertThat(held.finished().usage().completionTokens()).isEqualTo(3);
            }
        }
        if (backendDraws) {
            assertThat(drawing.fedSegments.get()).as("steps queued ahead").isPositive();
        }
    }

    /**
     * A stop token id is held back the same way: the request's first tokens are then what the model
     * gives with that id banned, and the logprobs reported stay the model's.
     */
    @Test
    void aStopTokenIdWaitsForMinTokens() {
        LoadedModel model = TestModels.load(FIXTURE);
        int[] ids = prompt(model.config().vocabSize(), 21, 7);
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            EngineRuns.Outcome free = run(engine, new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(1),
                    true, 2, -1));
            int stopId = free.tokens().getFirst();
            List<TokenLogprob> top = free.logprobs().getFirst().top();
            assertThat(top.get(0).logprob()).as("no tie").isGreaterThan(top.get(1).logprob());

            EngineRuns.Outcome stopped = run(engine, new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(6)
                    .withStopTokenIds(Set.of(stopId)), true, 2, -1));
            assertThat(stopped.tokens()).containsExactly(stopId);

            SamplingParams held = SamplingParams.greedy().withMaxTokens(6).withStopTokenIds(Set.of(stopId))
                    .withMinTokens(2);
            EngineRuns.Outcome logprobs = run(engine, new EngineRequest(ids, held, true, 2, -1));
            EngineRuns.Outcome tokensOnly = run(engine, new EngineRequest(ids, held, true, -1, -1));
            for (EngineRuns.Outcome outcome : List.of(logprobs, tokensOnly)) {
                assertThat(outcome.tokens().size()).isGreaterThanOrEqualTo(2);
                assertThat(outcome.tokens().getFirst()).isEqualTo(top.get(1).id());
                assertThat(outcome.tokens().get(1)).isNotEqualTo(stopId);
                // From the third token on the stop id may end it again, and ends it there if it comes.
                int at = outcome.tokens().indexOf(stopId);
                assertThat(at == -1 || at == outcome.tokens().size() - 1).as("%s", outcome.tokens()).isTrue();
            }
            assertThat(tokensOnly.tokens()).isEqualTo(logprobs.tokens());
            assertThat(logprobs.logprobs().getFirst().top()).as("the model's own logprobs").isEqualTo(top);
        }
    }

    @Test
    void minTokensPastMaxTokensIsRefused() {
        assertThatThrownBy(() -> SamplingParams.greedy().withMaxTokens(3).withMinTokens(4))
                .hasMessage("min_tokens must be <= max_tokens (3), got 4");
        assertThatThrownBy(() -> SamplingParams.greedy().withMinTokens(-1))
                .hasMessage("min_tokens must be >= 0, got -1");
    }
}
