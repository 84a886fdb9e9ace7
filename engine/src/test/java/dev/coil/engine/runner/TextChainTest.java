package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** A string's characters kept a link each: equal exactly when the characters are, and read back whole. */
class TextChainTest {

    private static TextChain of(String text) {
        TextChain chain = TextChain.EMPTY;
        for (char c : text.toCharArray()) {
            chain = chain.append(c);
        }
        return chain;
    }

    @Test
    void chainsOfTheSameCharactersAreEqualAndReadBackAsTheirString() {
        for (String text : new String[] {"", "a", "q\"z", "\uD83D\uDE00é", "abc".repeat(50)}) {
            assertThat(of(text)).isEqualTo(of(text)).hasSameHashCodeAs(of(text)).hasToString(text);
        }
        TextChain shared = of("ab");
        assertThat(shared.append('c')).isEqualTo(of("abc"));
        assertThat(of("abc")).isNotEqualTo(of("abd")).isNotEqualTo(of("ab")).isNotEqualTo(of("xbc"));
        assertThat(TextChain.EMPTY).isNotEqualTo(of("\0"));
    }
}
