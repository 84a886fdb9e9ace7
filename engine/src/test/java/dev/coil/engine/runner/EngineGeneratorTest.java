package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.model.TestModels;
import org.junit.jupiter.api.Test;

/** A request waited for through the engine generates what the standalone generator does. */
class EngineGeneratorTest {

    @Test
    void greedyTokensAndTextEqualTheStandaloneGenerators() throws Exception {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int[] ids = prompt(model.config().vocabSize(), 29, 8);
        SamplingParams params = SamplingParams.greedy().withMaxTokens(10);
        Generation expected = new Generator(model, EngineTest.OPS).generate(ids, params, text -> { });
        StringBuilder streamed = new StringBuilder();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withKvDtype(
                dev.coil.engine.load.DType.F32))) {
            Generation actual = new EngineGenerator(engine).generate(ids, params, streamed::append);
            assertThat(actual.tokenIds()).containsExactly(expected.tokenIds());
            assertThat(actual.text()).isEqualTo(expected.text()).isEqualTo(streamed.toString());
            assertThat(actual.finishReason()).isEqualTo(expected.finishReason());
            assertThat(actual.timings().generatedTokens()).isEqualTo(10);
        }
    }

    /** The same with min_tokens holding back an end-of-sequence token that a +100 bias all but forces. */
    @Test
    void minTokensEndsBothAfterTheSameTokens() throws Exception {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int[] ids = prompt(model.config().vocabSize(), 29, 8);
        int endId = model.endOfSequenceIds().iterator().next();
        SamplingParams params = SamplingParams.builder().temperature(0.9).seed(4L).maxTokens(10).minTokens(5)
                .logitBias(java.util.Map.of(endId, 100f)).build();
        Generation expected = new Generator(model, EngineTest.OPS).generate(ids, params, text -> { });
        assertThat(expected.tokenIds()).hasSize(5).doesNotContain(endId);
        assertThat(expected.finishReason()).isEqualTo(FinishReason.STOP);
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL.withKvDtype(
                dev.coil.engine.load.DType.F32))) {
            Generation actual = new EngineGenerator(engine).generate(ids, params, text -> { });
            assertThat(actual.tokenIds()).containsExactly(expected.tokenIds());
            assertThat(actual.finishReason()).isEqualTo(FinishReason.STOP);
        }
    }
}
