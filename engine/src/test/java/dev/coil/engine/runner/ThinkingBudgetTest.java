package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.model.TestModels;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Requests with a thinking budget through the engine, on a random model that never writes the end tag
 * itself: the tokens before the budget is spent are those the request draws without one, then come the
 * end tag's tokens (a half-spelled character finished first), then the answer; held to a grammar after
 * the tag, the answer is whole.
 */
class ThinkingBudgetTest {

    private static final ThinkingBudget FOUR = new ThinkingBudget(4, "<think>", "</think>", true);

    @Test
    void theEndTagComesOnceTheBudgetIsSpent() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        int[] end = model.tokenizer().encode("</think>", false);
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            for (int seed = 0; seed < 8; seed++) {
                SamplingParams free = SamplingParams.builder().temperature(seed % 2 == 0 ? 0 : 1.2).seed((long) seed)
                        .maxTokens(20).build();
                int[] prompt = prompt(vocab, 9, seed);
                List<Integer> unbudgeted = run(engine, new EngineRequest(prompt, free, true, -1, -1)).tokens();
                EngineRuns.Outcome outcome = run(engine, new EngineRequest(prompt,
                        free.withThinkingBudget(FOUR), true, -1, -1));
                int[] tokens = outcome.tokens().stream().mapToInt(Integer::intValue).toArray();
                assertThat(tokens).as("seed %d", seed).hasSize(20);
                int forcedAt = indexOf(tokens, end);
                assertThat(forcedAt).as("seed %d: %s", seed, outcome.text())
                        .isBetween(FOUR.tokens(), FOUR.tokens() + ThinkingBudgetState.MOST_WAITED);
                assertThat(outcome.tokens().subList(0, forcedAt)).as("seed %d: before the end", seed)
                        .isEqualTo(unbudgeted.subList(0, forcedAt));
                assertThat(outcome.text()).contains("</think>");
            }
        }
    }

    @Test
    void aGrammarAfterTheEndTagHoldsTheAnswer() {
        String regex = "(yes|no)-[a-f0-9]{2,5}!?";
        OutputGrammar grammar = OutputGrammar.regex(regex).after("</think>");
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            for (int seed = 0; seed < 6; seed++) {
                SamplingParams params = SamplingParams.builder().temperature(seed % 2 == 0 ? 0 : 1.0).seed((long) seed)
                        .maxTokens(40).grammar(grammar).thinkingBudget(FOUR).build();
                EngineRuns.Outcome outcome = run(engine, new EngineRequest(prompt(vocab, 9, seed), params, false, -1, -1));
                String text = outcome.text();
                int end = text.indexOf("</think>");
                assertThat(end).as("seed %d: %s", seed, text).isNotNegative();
                assertThat(outcome.finished().reason()).as(text).isEqualTo(FinishReason.STOP);
                assertThat(text.substring(end + "</think>".length())).as(text).matches("\\s{0,4}" + regex);
            }
        }
    }

    private static int indexOf(int[] tokens, int[] part) {
        for (int i = 0; i + part.length <= tokens.length; i++) {
            if (Arrays.equals(tokens, i, i + part.length, part, 0, part.length)) {
                return i;
            }
        }
        return -1;
    }
}
