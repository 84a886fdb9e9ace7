package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.load.DType;
import dev.coil.engine.model.TestModels;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Scoring through the engine gives the standalone scorer's logprobs and top logprobs at every position. */
class EngineScorerTest {

    @Test
    void promptLogprobsEqualTheStandaloneScorers() throws Exception {
        LoadedModel model = TestModels.load("bamba");
        int[] ids = prompt(model.config().vocabSize(), 45, 4);
        ScoreResult expected = new Scorer(model, EngineTest.OPS).score(ids, 3);
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withKvDtype(DType.F32))) {
            ScoreResult actual = new EngineScorer(engine).score(ids, 3);
            assertThat(actual.tokenIds()).containsExactly(ids);
            assertThat(actual.logprobs()[0]).isNaN();
            for (int p = 1; p < ids.length; p++) {
                assertThat(actual.logprobs()[p]).as("position %d", p).isCloseTo(expected.logprobs()[p], within(2e-5f));
            }
            assertThat(actual.ranks()).containsExactly(expected.ranks());
            assertThat(expected.ranks()[0]).isZero();
            assertThat(Arrays.stream(expected.ranks()).max().orElseThrow()).as("a random prompt's tokens: ranks well past 1").isGreaterThan(3);
            assertThat(actual.topLogprobs()).hasSize(ids.length);
            for (int p = 0; p < ids.length; p++) {
                for (int k = 0; k < 3; k++) {
                    assertThat(actual.topLogprobs().get(p).get(k).id()).isEqualTo(expected.topLogprobs().get(p).get(k).id());
                    assertThat(actual.topLogprobs().get(p).get(k).logprob()).as("position %d, top %d", p, k)
                            .isCloseTo(expected.topLogprobs().get(p).get(k).logprob(), within(2e-5f));
                }
            }
        }
    }
}
