package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.server.api.ReasoningReader.Split;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Splitting a model's {@code <think>} reasoning off its answer: where the reasoning starts (the
 * prompt's open block, or the answer's first text) and ends, and that a stream cut anywhere splits as
 * the whole output does.
 */
class ReasoningReaderTest {

    private static final ReasoningFormat THINK = ReasoningFormat.THINK;

    /** Outputs, each with whether the prompt opened the block, and the reasoning and answer expected. */
    private record Case(boolean opened, String output, String reasoning, String answer) {
    }

    private static final List<Case> CASES = List.of(
            new Case(true, "Paris is in France.</think>\n\nIt is 12 C.", "Paris is in France.", "\n\nIt is 12 C."),
            new Case(true, "still thinking", "still thinking", ""),
            new Case(true, "cut in the end tag </thi", "cut in the end tag </thi", ""),
            new Case(true, "</think>", "", ""),
            new Case(true, "a < b </ and </think>x</think>", "a < b </ and ", "x</think>"),
            new Case(false, "<think>a plan</think>The answer", "a plan", "The answer"),
            new Case(false, "<think>no end", "no end", ""),
            new Case(false, "Plain answer <think>not reasoning</think>", "", "Plain answer <think>not reasoning</think>"),
            new Case(false, "<thin", "", "<thin"),
            new Case(false, "", "", ""),
            new Case(false, "<think>é 漢字 \uD83D\uDE00</think>\uD83D\uDE00", "é 漢字 \uD83D\uDE00", "\uD83D\uDE00"));

    @Test
    void theReasoningIsWhatComesBeforeTheEndTag() {
        for (Case example : CASES) {
            assertThat(streamed(example.opened(), List.of(example.output()))).as(example.output())
                    .isEqualTo(new Split(example.reasoning(), example.answer()));
        }
    }

    @Test
    void aStreamCutAnywhereSplitsAsTheWholeOutput() {
        for (Case example : CASES) {
            String output = example.output();
            Split whole = new Split(example.reasoning(), example.answer());
            List<List<String>> cuts = StreamCuts.of(output, 30);
            for (List<String> cut : cuts) {
                assertThat(streamed(example.opened(), cut)).as("%s cut as %s", output, cut).isEqualTo(whole);
            }
        }
    }

    @Test
    void reasoningIsPassedOnAsItComesExceptWhatMayStartTheEndTag() {
        ReasoningReader reader = new ReasoningReader(THINK, true);
        assertThat(reader.feed("First, ")).isEqualTo(new Split("First, ", ""));
        assertThat(reader.feed("the map </")).isEqualTo(new Split("the map ", ""));
        assertThat(reader.feed("think>\n\nParis")).isEqualTo(new Split("", "\n\nParis"));
        assertThat(reader.feed(".")).isEqualTo(new Split("", "."));
        assertThat(reader.finish()).isEqualTo(new Split("", ""));
        assertThat(reader.reasoned()).isTrue();
        assertThat(new ReasoningReader(THINK, false).reasoned()).isFalse();
    }

    @Test
    void aPromptOpensTheBlockWhenNoEndTagFollowsItsLastStart() {
        assertThat(THINK.opensIn("<|assistant|><think>\n")).isTrue();
        assertThat(THINK.opensIn("<think>old</think> question <|assistant|><think>\n\n")).isTrue();
        assertThat(THINK.opensIn("<|assistant|><think></think>")).isFalse();
        assertThat(THINK.opensIn("<|assistant|>")).isFalse();
        assertThat(ReasoningFormat.named("Qwen3")).isEqualTo(THINK);
        assertThat(ReasoningFormat.named("deepseek-r1")).isEqualTo(THINK);
    }

    /** The pieces read one after another, then the end; reasoning and answer joined. */
    private static Split streamed(boolean opened, List<String> pieces) {
        ReasoningReader reader = new ReasoningReader(THINK, opened);
        StringBuilder reasoning = new StringBuilder();
        StringBuilder answer = new StringBuilder();
        for (String piece : pieces) {
            Split split = reader.feed(piece);
            reasoning.append(split.reasoning());
            answer.append(split.answer());
        }
        Split rest = reader.finish();
        return new Split(reasoning.append(rest.reasoning()).toString(), answer.append(rest.answer()).toString());
    }
}
