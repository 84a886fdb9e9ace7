package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.model.TestModels;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * How a request ends on a token id, as vLLM has it: a stop_token_ids id is output (its text, its
 * logprob, counted in usage) and then ends the request with finish STOP naming the id; the model's
 * end-of-sequence token ends it outside its output and names nothing.
 */
class StopTokenTest {

    private static final String FIXTURE = "granitemoehybrid";

    /** The greedy tokens of the prompt, with logprobs, ending nowhere before max_tokens. */
    private static EngineRuns.Outcome free(LoadedModel model, int[] ids) {
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            return run(engine, new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(12), true, 2, -1));
        }
    }

    /** The index of the first token from {@code from} on that does not occur before it. */
    private static int firstFreshIndex(List<Integer> tokens, int from) {
        int index = from;
        while (tokens.subList(0, index).contains(tokens.get(index))) {
            index++;
        }
        return index;
    }

    @Test
    void aStopTokenIsOutputThenEndsTheRequestWithItsId() {
        LoadedModel model = TestModels.load(FIXTURE);
        int[] ids = prompt(model.config().vocabSize(), 21, 7);
        EngineRuns.Outcome free = free(model, ids);
        int index = firstFreshIndex(free.tokens(), 4);
        int stopId = free.tokens().get(index);

        EngineRuns.Outcome stopped;
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            stopped = run(engine, new EngineRequest(ids, SamplingParams.greedy().withMaxTokens(12)
                    .withStopTokenIds(Set.of(stopId)), true, 2, -1));
        }
        List<Integer> expected = free.tokens().subList(0, index + 1);
        assertThat(stopped.tokens()).isEqualTo(expected).endsWith(stopId);
        assertThat(stopped.text()).isEqualTo(model.tokenizer().decode(
                expected.stream().mapToInt(Integer::intValue).toArray(), true));
        EngineTest.assertSameLogprobs(stopped.logprobs(), free.logprobs().subList(0, index + 1), 1e-6);
        assertThat(stopped.finished().reason()).isEqualTo(FinishReason.STOP);
        assertThat(stopped.finished().stopTokenId()).isEqualTo(stopId);
        assertThat(stopped.finished().stopString()).isNull();
        assertThat(stopped.finished().usage().completionTokens()).isEqualTo(index + 1);
        assertThat(stopped.finished().timings().generatedTokens()).isEqualTo(index + 1);

        // Also the last token max_tokens allows: the stop token, not the length, ended it.
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            EngineRuns.Outcome last = run(engine, new EngineRequest(ids, SamplingParams.greedy()
                    .withMaxTokens(index + 1).withStopTokenIds(Set.of(stopId)), true, -1, -1));
            assertThat(last.tokens()).isEqualTo(expected);
            assertThat(last.finished().reason()).isEqualTo(FinishReason.STOP);
            assertThat(last.finished().stopTokenId()).isEqualTo(stopId);
        }
    }

    @Test
    void theEndOfSequenceTokenEndsTheRequestOutsideItsOutput(@TempDir Path folder) {
        LoadedModel fixture = TestModels.load(FIXTURE);
        int[] ids = prompt(fixture.config().vocabSize(), 21, 7);
        EngineRuns.Outcome free = free(fixture, ids);
        int index = firstFreshIndex(free.tokens(), 4);
        int endId = free.tokens().get(index);

        // The fixture's weights with that id as their end-of-sequence token; listed as a stop token
        // id too, the end-of-sequence meaning wins, as in vLLM.
        try (LoadedModel model = EngineRuns.withEndOfSequence(FIXTURE, endId, folder);
                Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            for (Set<Integer> stopIds : List.of(Set.<Integer>of(), Set.of(endId))) {
                EngineRuns.Outcome ended = run(engine, new EngineRequest(ids, SamplingParams.greedy()
                        .withMaxTokens(12).withStopTokenIds(stopIds), false, 2, -1));
                assertThat(ended.tokens()).as("stop ids %s", stopIds).isEqualTo(free.tokens().subList(0, index));
                assertThat(ended.logprobs()).hasSize(index);
                assertThat(ended.finished().reason()).isEqualTo(FinishReason.STOP);
                assertThat(ended.finished().stopTokenId()).isNull();
                assertThat(ended.finished().usage().completionTokens()).isEqualTo(index);
            }
        }
    }

    @Test
    void theGeneratorEndsOnBothAsTheEngineDoes(@TempDir Path folder) {
        LoadedModel fixture = TestModels.load(FIXTURE);
        int[] ids = prompt(fixture.config().vocabSize(), 21, 7);
        SamplingParams params = SamplingParams.greedy().withMaxTokens(12);
        int[] free = new Generator(fixture, EngineTest.OPS).generate(ids, params, true, text -> { }).tokenIds();
        int index = firstFreshIndex(java.util.Arrays.stream(free).boxed().toList(), 4);
        int id = free[index];

        Generation stopped = new Generator(fixture, EngineTest.OPS).generate(ids, params.withStopTokenIds(Set.of(id)),
                true, text -> { });
        assertThat(stopped.tokenIds()).containsExactly(java.util.Arrays.copyOf(free, index + 1));
        assertThat(stopped.finishReason()).isEqualTo(FinishReason.STOP);
        try (LoadedModel model = EngineRuns.withEndOfSequence(FIXTURE, id, folder)) {
            Generation ended = new Generator(model, EngineTest.OPS).generate(ids, params, false, text -> { });
            assertThat(ended.tokenIds()).containsExactly(java.util.Arrays.copyOf(free, index));
            assertThat(ended.finishReason()).isEqualTo(FinishReason.STOP);
        }
    }

    @Test
    void stopTokenIdsOutsideTheVocabularyAreRefusedAtSubmit() {
        LoadedModel model = TestModels.load(FIXTURE);
        int vocab = model.config().vocabSize();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            assertThatThrownBy(() -> engine.submit(new EngineRequest(new int[] {1, 2}, SamplingParams.greedy()
                    .withMaxTokens(2).withStopTokenIds(Set.of(vocab)), true, -1, -1)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("stop_token_ids: token id " + vocab + " is outside the vocabulary [0, " + vocab + ")");
        }
    }
}
