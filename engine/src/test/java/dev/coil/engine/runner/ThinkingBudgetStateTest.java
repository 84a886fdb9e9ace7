package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.tokenizer.Tokenizer;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A thinking budget over the text of an output, on the demo model's tokenizer: tokens counted from the
 * start tag (or the first token, when the prompt opens the block), the end tag's tokens forced one by
 * one when the count reaches the budget, a half-spelled character finished first, nothing held
 * once the block ended, and a block opened again counted anew.
 */
class ThinkingBudgetStateTest {

    private static Tokenizer tokenizer;
    private static int[] end;

    @BeforeAll
    static void load() throws Exception {
        tokenizer = Tokenizer.loadFolder(Path.of("..", "models", "coil-demo"));
        end = tokenizer.encode("</think>", false);
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    private static ThinkingBudgetState state(int tokens, boolean startsInside) {
        return state(tokens, startsInside, false);
    }

    private static ThinkingBudgetState state(int tokens, boolean startsInside, boolean grammarAfter) {
        return ThinkingBudgetState.of(new ThinkingBudget(tokens, "<think>", "</think>", startsInside), tokenizer,
                grammarAfter);
    }

    /** Forces the end tag's tokens in order, each alone, and then holds nothing. */
    private static void assertForcesTheEnd(ThinkingBudgetState state) {
        assertForcesTheEndTag(state);
        state.accept("more", false);
        assertThat(state.allowedBits()).isNull();
    }

    /** Forces the end tag's tokens in order, each alone. */
    private static void assertForcesTheEndTag(ThinkingBudgetState state) {
        for (int token : end) {
            int[] bits = state.allowedBits();
            assertThat(bits).isNotNull();
            for (int id = 0; id < bits.length * 32; id++) {
                assertThat(TokenBits.allows(bits, id)).as("token %d", id).isEqualTo(id == token);
            }
            state.accept(tokenizer.decode(new int[] {token}, false), false);
        }
        assertThat(state.allowedBits()).isNull();
    }

    /** Accepts {@code count} tokens of plain text, none of them forced. */
    private static void acceptFree(ThinkingBudgetState state, int count) {
        for (int i = 0; i < count; i++) {
            assertThat(state.allowedBits()).as("token %d", i).isNull();
            state.accept(" word", false);
        }
    }

    /** A block opened again, after the model's own end or a forced one, gets the whole budget again. */
    @Test
    void aBlockOpenedAgainIsCountedAnew() {
        ThinkingBudgetState state = state(3, false);
        state.accept("<think>", false);
        acceptFree(state, 2);
        state.accept("</think>", false);
        acceptFree(state, 5);
        state.accept("<think>", false);
        assertThat(state.counted()).isZero();
        acceptFree(state, 3);
        assertThat(state.counted()).isEqualTo(3);
        assertForcesTheEndTag(state);
        acceptFree(state, 5);
        state.accept("<thi", false);
        state.accept("nk>", false);
        acceptFree(state, 3);
        assertForcesTheEnd(state);
    }

    /** Where a grammar holds the answer after the block, a start tag in it is the answer's text: nothing is held. */
    @Test
    void noBlockOpensAgainWhereAGrammarHoldsTheAnswer() {
        for (boolean forced : new boolean[] {false, true}) {
            ThinkingBudgetState state = state(2, true, true);
            if (forced) {
                acceptFree(state, 2);
                assertForcesTheEndTag(state);
            } else {
                state.accept("x</think>", false);
            }
            state.accept("{\"tag\": \"<think>", false);
            acceptFree(state, 5);
            state.accept("\"}", false);
            assertThat(state.allowedBits()).isNull();
        }
        ThinkingBudgetState inOne = state(0, true, true);
        assertForcesTheEndTag(inOne);
        inOne.accept("\"<think>\"", false);
        assertThat(inOne.allowedBits()).isNull();
    }

    /** One token's text may end a block and open the next, or open and end one. */
    @Test
    void tagsInOneTokenAreTakenInTurn() {
        ThinkingBudgetState state = state(2, true);
        state.accept("a</think>\n<think>b", false);
        assertThat(state.counted()).as("the token opening the second block is not counted in it").isZero();
        acceptFree(state, 2);
        assertForcesTheEndTag(state);

        ThinkingBudgetState whole = state(1, false);
        whole.accept("<think>x</think> then <think>", false);
        assertThat(whole.allowedBits()).isNull();
        whole.accept("y", false);
        assertForcesTheEnd(whole);

        ThinkingBudgetState none = state(0, false);
        none.accept("<think>", false);
        assertForcesTheEndTag(none);
        none.accept(" answer <think>", false);
        assertForcesTheEnd(none);
    }

    @Test
    void aBlockThePromptOpensCountsFromTheFirstToken() {
        ThinkingBudgetState state = state(3, true);
        for (String text : new String[] {"so", " the", " answer"}) {
            assertThat(state.allowedBits()).isNull();
            state.accept(text, false);
        }
        assertThat(state.counted()).isEqualTo(3);
        assertForcesTheEnd(state);
    }

    @Test
    void countingStartsAfterTheStartTagSpelledAcrossTokens() {
        ThinkingBudgetState state = state(2, false);
        for (String text : new String[] {"Hello ", "<thi", "nk>"}) {
            state.accept(text, false);
            assertThat(state.allowedBits()).isNull();
        }
        assertThat(state.counted()).isZero();
        state.accept("one", false);
        assertThat(state.allowedBits()).isNull();
        state.accept(" two", false);
        assertForcesTheEnd(state);
    }

    @Test
    void anEndTagTheModelWritesEndsTheBlockUnforced() {
        ThinkingBudgetState state = state(3, true);
        state.accept("done</th", false);
        state.accept("ink>", false);
        for (int i = 0; i < 5; i++) {
            state.accept("answer", false);
            assertThat(state.allowedBits()).isNull();
        }
        ThinkingBudgetState inOne = state(1, false);
        inOne.accept("<think>brief</think>", false);
        inOne.accept("answer", false);
        assertThat(inOne.allowedBits()).isNull();
    }

    @Test
    void aBudgetOfNoTokensForcesTheEndAtOnce() {
        assertForcesTheEnd(state(0, true));
        ThinkingBudgetState afterStart = state(0, false);
        afterStart.accept("<think>", false);
        assertForcesTheEnd(afterStart);
    }

    /** A character half spelled when the budget runs out is finished first, for at most three tokens. */
    @Test
    void aHalfSpelledCharacterIsFinishedFirst() {
        ThinkingBudgetState state = state(1, true);
        state.accept("", true);
        assertThat(state.allowedBits()).isNull();
        state.accept("日", false);
        assertThat(state.counted()).isEqualTo(2);
        assertForcesTheEnd(state);

        ThinkingBudgetState endless = state(1, true);
        for (int i = 0; i < ThinkingBudgetState.MOST_WAITED; i++) {
            endless.accept("", true);
            assertThat(endless.allowedBits()).isNull();
        }
        endless.accept("", true);
        assertThat(endless.counted()).isEqualTo(1 + ThinkingBudgetState.MOST_WAITED);
        assertForcesTheEnd(endless);
    }

    @Test
    void aBudgetNeedsATokenizerAndTags() {
        assertThat(ThinkingBudgetState.of(null, tokenizer, false)).isNull();
        assertThatThrownBy(() -> ThinkingBudgetState.of(new ThinkingBudget(4, "<think>", "</think>", true), null,
                false))
                .hasMessageStartingWith("thinking_token_budget: ");
        assertThatThrownBy(() -> new ThinkingBudget(-1, "<think>", "</think>", true))
                .hasMessage("thinking_token_budget must be >= 0, got -1");
    }
}
