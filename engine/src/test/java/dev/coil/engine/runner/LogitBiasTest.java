package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.model.TestModels;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * logit_bias through the engine, as OpenAI and vLLM have it: the bias moves the token choice, greedy
 * or sampled, and the logprobs reported stay the model's own.
 */
class LogitBiasTest {

    private static final String FIXTURE = "granitemoehybrid";

    @Test
    void minusOneHundredBansTheGreedyTokenAndTheLogprobsStayTheModels() {
        LoadedModel model = TestModels.load(FIXTURE);
        int[] ids = prompt(model.config().vocabSize(), 19, 3);
        EngineRuns.Outcome free;
        EngineRuns.Outcome banned;
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            free = run(engine, new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(1), true, 3, -1));
            int first = free.tokens().getFirst();
            banned = run(engine, new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(1)
                    .withLogitBias(Map.of(first, -100f)), true, 3, -1));
        }
        List<TokenLogprob> top = free.logprobs().getFirst().top();
        assertThat(top.get(0).logprob()).as("no tie between the two best").isGreaterThan(top.get(1).logprob());
        assertThat(banned.tokens()).containsExactly(top.get(1).id());
        // The reported logprobs are the model's, before the bias: the same top list as without it.
        assertThat(banned.logprobs().getFirst().top()).isEqualTo(top);
        assertThat(banned.logprobs().getFirst().chosen()).isEqualTo(top.get(1));
    }

    @Test
    void plusOneHundredForcesItsTokenGreedyOrSampled() {
        LoadedModel model = TestModels.load(FIXTURE);
        int vocab = model.config().vocabSize();
        int[] ids = prompt(vocab, 23, 5);
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            EngineRuns.Outcome free = run(engine, new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(6),
                    true, -1, -1));
            int forced = 0;
            while (free.tokens().contains(forced) || model.endOfSequenceIds().contains(forced)) {
                forced++;
            }
            Map<Integer, Float> bias = Map.of(forced, 100f);
            EngineRuns.Outcome greedy = run(engine, new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(6)
                    .withLogitBias(bias), true, -1, -1));
            EngineRuns.Outcome sampled = run(engine, new EngineRequest(ids, SamplingParams.builder().temperature(1)
                    .seed(11L).maxTokens(6).logitBias(bias).build(), true, -1, -1));
            assertThat(greedy.tokens()).isEqualTo(Collections.nCopies(6, forced));
            assertThat(sampled.tokens()).isEqualTo(Collections.nCopies(6, forced));
        }
    }

    @Test
    void anIdOutsideTheVocabularyIsRefusedAtSubmit() {
        LoadedModel model = TestModels.load(FIXTURE);
        int vocab = model.config().vocabSize();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            assertThatThrownBy(() -> engine.submit(new EngineRequest(prompt(vocab, 5, 1), SamplingParams.greedy()
                    .withMaxTokens(2).withLogitBias(Map.of(vocab, 1f)), true, -1, -1)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("logit_bias: token id " + vocab + " is outside the vocabulary [0, " + vocab + ")");
        }
    }
}
