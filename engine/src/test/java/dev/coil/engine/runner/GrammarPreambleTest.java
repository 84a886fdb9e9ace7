package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/**
 * {@link OutputGrammar#after}: free text up to an end tag, then a few whitespace characters, then the
 * grammar's value; the output may not end before the value.
 */
class GrammarPreambleTest {

    private static final String END = "</think>";

    @Test
    void anyTextUpToTheEndTagThenTheValue() {
        OutputGrammar grammar = OutputGrammar.jsonObject().after(END);
        String reasoning = "Is 9.11 larger? <thin </t </think - {\"not\": yet} ";
        GrammarState state = grammar.start();
        for (int i = 0; i < reasoning.length(); i++) {
            assertThat(state.mayEnd()).as("after %d characters", i).isFalse();
            state = state.feed(reasoning.charAt(i));
            assertThat(state).as("character %d of the free text", i).isNotNull();
        }
        GrammarState closed = state.feedAll(END);
        assertThat(closed).isNotNull();
        assertThat(closed.mayEnd()).as("closed, before the value").isFalse();
        assertThat(closed.feedAll("\n\n{\"a\": [1]}").done()).isTrue();
        assertThat(closed.feedAll("{}").done()).as("no whitespace").isTrue();
        assertThat(closed.feed('x')).as("text after the tag that no value starts with").isNull();
        assertThat(closed.feedAll("\n \n\t")).as("four whitespace characters").isNotNull();
        assertThat(closed.feedAll("\n \n\t ")).as("five").isNull();
        assertThat(closed.feedAll(END)).as("a second end tag is the value's, which refuses it").isNull();
    }

    @Test
    void theEndTagCountsFromItsFirstWholeOccurrence() {
        // A tag whose start repeats inside it: "aab" after "aa" + "a" still waits on one "b".
        GrammarState state = OutputGrammar.regex("[0-9]+").after("aab").start().feedAll("xaaa");
        assertThat(state.feedAll("7b7").mayEnd()).as("a character inside the tag breaks it").isFalse();
        assertThat(state.feedAll("b7").mayEnd()).isTrue();
        assertThat(state.feedAll("b").mayEnd()).as("tag whole, no value yet").isFalse();
    }

    @Test
    void charactersOfTheTagMatchedAfterEachCharacter() {
        assertThat(GrammarFrame.Preamble.matchedAfter(END, 0, '<')).isEqualTo(1);
        assertThat(GrammarFrame.Preamble.matchedAfter(END, 3, 'h')).isEqualTo(4);
        assertThat(GrammarFrame.Preamble.matchedAfter(END, 3, 'x')).isZero();
        assertThat(GrammarFrame.Preamble.matchedAfter(END, 3, '<')).isEqualTo(1);
        assertThat(GrammarFrame.Preamble.matchedAfter("aab", 2, 'a')).isEqualTo(2);
        assertThat(GrammarFrame.Preamble.matchedAfter("abab", 3, 'a')).isEqualTo(1);
        assertThat(GrammarFrame.Preamble.matchedAfter("abab", 3, 'b')).isEqualTo(4);
        assertThat(GrammarFrame.Preamble.matchedAfter("abac", 3, 'b')).isEqualTo(2);
    }

    @Test
    void aValueThatMayStartWithWhitespaceTakesItEitherWay() {
        GrammarState closed = OutputGrammar.regex(" *yes").after(END).start().feedAll(END);
        assertThat(closed.feedAll("yes").done()).isTrue();
        assertThat(closed.feedAll("   yes").mayEnd()).isTrue();
        assertThat(closed.feedAll("        yes").mayEnd()).as("past the gap, the pattern's own spaces").isTrue();
    }

    @Test
    void madeOnceAndOnlyOnce() {
        OutputGrammar grammar = OutputGrammar.regex("[a-z]+");
        assertThat(grammar.after(END)).isEqualTo(grammar.after(END)).isNotEqualTo(grammar)
                .isNotEqualTo(grammar.after("</reasoning>"));
        assertThatThrownBy(() -> grammar.after(END).after(END)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> grammar.after("")).isInstanceOf(IllegalArgumentException.class);
    }
}
