package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The automaton of a regular expression against java.util.regex, an independent matcher: over every
 * text of up to four code points from a small alphabet (ASCII, an accented letter and a character
 * beyond U+FFFF, fed as its two UTF-16 units), the automaton takes the text whole exactly when
 * {@code Pattern.matches} does (within the length bounds, when there are some), and every text it has
 * not refused can still be finished.
 */
class RegexAutomatonTest {

    /** Code points the texts are made of. */
    private static final int[] ALPHABET = {'a', 'b', '0', '-', '.', ' ', 'é', 0x1F600};

    static Stream<Arguments> patterns() {
        return Stream.of(
                Arguments.of("^[a-z]+$", 0, Integer.MAX_VALUE),
                Arguments.of("a|b0", 0, Integer.MAX_VALUE),
                Arguments.of("(ab)*-?", 0, Integer.MAX_VALUE),
                Arguments.of("\\d{2,3}", 0, Integer.MAX_VALUE),
                Arguments.of("[^a]{1,2}", 0, Integer.MAX_VALUE),
                Arguments.of(".?a", 0, Integer.MAX_VALUE),
                Arguments.of("(?:a|é)+b", 0, Integer.MAX_VALUE),
                Arguments.of("\\w*", 0, Integer.MAX_VALUE),
                Arguments.of("\\s\\S", 0, Integer.MAX_VALUE),
                Arguments.of("[\\d-]+", 0, Integer.MAX_VALUE),
                Arguments.of("\uD83D\uDE00+", 0, Integer.MAX_VALUE),
                Arguments.of("[\uD83D\uDE00é]b?", 0, Integer.MAX_VALUE),
                Arguments.of("a{2}|b{1,}", 0, Integer.MAX_VALUE),
                Arguments.of("(a|)b", 0, Integer.MAX_VALUE),
                Arguments.of("\\D\\W", 0, Integer.MAX_VALUE),
                Arguments.of("[^\\d\\s]*", 0, Integer.MAX_VALUE),
                Arguments.of(".{2}", 0, Integer.MAX_VALUE),
                Arguments.of("[a-b0]*?-", 0, Integer.MAX_VALUE),
                Arguments.of("^(?<word>ab)?$", 0, Integer.MAX_VALUE),
                Arguments.of("\\x61\\u00e9|\\-\\.", 0, Integer.MAX_VALUE),
                Arguments.of("((a|b)*0)*", 0, Integer.MAX_VALUE),
                Arguments.of("(a*)*b", 0, Integer.MAX_VALUE),
                Arguments.of("b[^\\s\\S]|a", 0, Integer.MAX_VALUE),
                Arguments.of("(ab0)*", 0, 4),
                Arguments.of("[a-z]*", 2, 3),
                Arguments.of("(ab)*", 1, 4),
                Arguments.of(".*", 3, Integer.MAX_VALUE),
                Arguments.of("[^b]*", 0, 2),
                Arguments.of("(a|\uD83D\uDE00)+", 2, 2));
    }

    @ParameterizedTest
    @MethodSource("patterns")
    void takesWholeTheTextsJavaMatchesAndNoOthers(String pattern, int minLength, int maxLength) {
        RegexAutomaton automaton = RegexAutomaton.compile(pattern, minLength, maxLength);
        Pattern java = Pattern.compile(pattern);
        int matched = 0;
        for (String text : texts(4)) {
            int length = text.codePointCount(0, text.length());
            boolean expected = java.matcher(text).matches() && length >= minLength && length <= maxLength;
            RegexAutomaton.Position position = feedAll(automaton, text);
            boolean taken = position != null && automaton.accepts(position);
            assertThat(taken).as("%s on \"%s\"", pattern, text).isEqualTo(expected);
            if (position != null) {
                assertThat(finishable(automaton, position)).as("%s can finish \"%s\"", pattern, text).isTrue();
            }
            matched += expected ? 1 : 0;
        }
        assertThat(matched).as("texts %s matches", pattern).isPositive();
    }

    static Stream<Arguments> exclusions() {
        return Stream.of(
                Arguments.of("a|ab|b+", 0, Integer.MAX_VALUE, Set.of("a", "ab")),
                Arguments.of("[a-b]{0,3}", 0, Integer.MAX_VALUE, Set.of("", "a", "ab", "aba", "abb")),
                Arguments.of(".*", 0, 2, Set.of("ab", "a-", "a")),
                Arguments.of("(ab)*", 0, Integer.MAX_VALUE, Set.of("", "ab")),
                Arguments.of("\uD83D\uDE00|éb?", 0, Integer.MAX_VALUE, Set.of("\uD83D\uDE00", "é")),
                Arguments.of("[a0]+", 1, 2, Set.of("a0", "0a", "00", "xyz")));
    }

    /**
     * With texts taken out, the automaton takes exactly the others, and every text it has not refused
     * can still be finished as one of them: a text that begins only excluded ones is refused.
     */
    @ParameterizedTest
    @MethodSource("exclusions")
    void takesNoExcludedTextAndLeavesNoDeadEnd(String pattern, int minLength, int maxLength, Set<String> excluded) {
        RegexAutomaton automaton = RegexAutomaton.compile(pattern, minLength, maxLength).without(excluded);
        Pattern java = Pattern.compile(pattern);
        int matched = 0;
        for (String text : texts(4)) {
            int length = text.codePointCount(0, text.length());
            boolean expected = java.matcher(text).matches() && length >= minLength && length <= maxLength
                    && !excluded.contains(text);
            RegexAutomaton.Position position = feedAll(automaton, text);
            boolean taken = position != null && automaton.accepts(position);
            assertThat(taken).as("%s without %s on \"%s\"", pattern, excluded, text).isEqualTo(expected);
            if (position != null) {
                assertThat(finishable(automaton, position)).as("%s can finish \"%s\"", pattern, text).isTrue();
            }
            matched += expected ? 1 : 0;
        }
        assertThat(matched).as("texts left of %s", pattern).isPositive();
        assertThat(feedAll(automaton, "a")).as("a, which begins only excluded texts of a|ab|b+")
                .matches(position -> !pattern.equals("a|ab|b+") || position == null);
    }

    @Test
    void countsItsTextsUpToACap() {
        assertThat(RegexAutomaton.compile("a|b0", 0, Integer.MAX_VALUE).textsUpTo(100)).isEqualTo(2);
        assertThat(RegexAutomaton.compile("[ab]{2}", 0, Integer.MAX_VALUE).textsUpTo(100)).isEqualTo(4);
        assertThat(RegexAutomaton.compile("\\d{2,3}", 0, Integer.MAX_VALUE).textsUpTo(10_000)).isEqualTo(1100);
        assertThat(RegexAutomaton.compile("\\d{2,3}", 0, Integer.MAX_VALUE).textsUpTo(50)).isEqualTo(50);
        assertThat(RegexAutomaton.compile("(ab)*", 0, Integer.MAX_VALUE).textsUpTo(1000)).isEqualTo(1000);
        assertThat(RegexAutomaton.compile("(ab)*", 0, 4).textsUpTo(1000)).isEqualTo(3);
        assertThat(RegexAutomaton.compile("[ab]|c", 0, Integer.MAX_VALUE).without(Set.of("a", "c")).textsUpTo(10))
                .isEqualTo(1);
        assertThat(RegexAutomaton.compile("a|ab|b+", 0, Integer.MAX_VALUE).without(Set.of("a", "ab")).textsUpTo(10))
                .isEqualTo(10);
        assertThat(RegexAutomaton.compile("\uD83D\uDE00|\u00e9", 0, Integer.MAX_VALUE).textsUpTo(10)).isEqualTo(2);
        // Long texts are counted without recursion: one text of each length of a* up to 50000.
        assertThat(RegexAutomaton.compile("a*", 0, 50_000).textsUpTo(Integer.MAX_VALUE)).isEqualTo(50_001);
        assertThat(RegexAutomaton.compile("[\\s\\S]*", 0, 100_000).textsUpTo(Integer.MAX_VALUE))
                .isEqualTo(Integer.MAX_VALUE);
    }

    @Test
    void noAutomatonIsLeftWhenEveryTextIsExcluded() {
        assertThat(RegexAutomaton.compile("a|b", 0, Integer.MAX_VALUE).without(Set.of("a", "b"))).isNull();
        assertThat(RegexAutomaton.compile("[ab]", 0, Integer.MAX_VALUE).without(Set.of("a"))).isNotNull();
    }

    @Test
    void aTextThatCanGoOnNoFurtherIsNotContinued() {
        RegexAutomaton automaton = RegexAutomaton.compile("ab|a", 0, Integer.MAX_VALUE);
        RegexAutomaton.Position a = automaton.feed(automaton.start(), 'a');
        assertThat(automaton.accepts(a)).isTrue();
        assertThat(automaton.mayContinue(a)).isTrue();
        RegexAutomaton.Position ab = automaton.feed(a, 'b');
        assertThat(automaton.accepts(ab)).isTrue();
        assertThat(automaton.mayContinue(ab)).isFalse();
        assertThat(automaton.feed(ab, 'b')).isNull();
    }

    /** Texts that reach the same place are at equal positions, so the constraint's cache finds them. */
    @Test
    void positionsAreEqualWhereTheSameTextsMayFollow() {
        RegexAutomaton automaton = RegexAutomaton.compile("(ab)*", 0, Integer.MAX_VALUE);
        RegexAutomaton.Position once = feedAll(automaton, "ab");
        assertThat(feedAll(automaton, "abab")).isEqualTo(once).hasSameHashCodeAs(once);
        assertThat(feedAll(automaton, "a")).isNotEqualTo(once);
    }

    static Stream<Arguments> refusedPatterns() {
        return Stream.of(
                Arguments.of("(?=a)b", "at character 1: lookaround is not supported"),
                Arguments.of("a(?<!b)", "lookaround is not supported"),
                Arguments.of("(a)\\1", "back references are not supported"),
                Arguments.of("a\\b", "word boundaries (\\b) are not supported"),
                Arguments.of("a^b", "^ is taken only at the start"),
                Arguments.of("a$b", "$ is taken only at the end"),
                Arguments.of("\\p{L}", "Unicode property classes (\\p) are not supported"),
                Arguments.of("(?i)a", "group flags are not supported"),
                Arguments.of("[z-a]", "the range z-a runs backwards"),
                Arguments.of("a{3,1}", "has its numbers out of order"),
                Arguments.of("a{2000}", "quantifiers count up to 1000"),
                Arguments.of("(a", "a group without its closing )"),
                Arguments.of("a)", "a ) that closes no group"),
                Arguments.of("[ab", "a class without its closing ]"),
                Arguments.of("\\uD83D", "half a surrogate pair"),
                Arguments.of("*a", "nothing to repeat"),
                Arguments.of("x{", "a { that starts no quantifier"),
                Arguments.of("\\q", "unknown escape \\q"),
                Arguments.of("a++", "possessive quantifiers are not supported"),
                Arguments.of("[\\d-z]", "a range in a class must run between two characters"),
                Arguments.of("a\\", "the pattern ends in a lone backslash"),
                Arguments.of("(a{1000}){1000}", "more than 20000 states"),
                Arguments.of("[^\\s\\S]", "matches no text"));
    }

    @ParameterizedTest
    @MethodSource("refusedPatterns")
    void refusesByNameWhatItCannotHoldTo(String pattern, String message) {
        assertThatThrownBy(() -> RegexAutomaton.compile(pattern, 0, Integer.MAX_VALUE))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("the pattern \"" + pattern + "\"")
                .hasMessageContaining(message);
    }

    @Test
    void refusesLengthBoundsTheBoundsCannotMeet() {
        assertThatThrownBy(() -> RegexAutomaton.compile("(ab)*", 3, 3))
                .hasMessageContaining("matches no text of 3 to 3 characters");
        assertThatThrownBy(() -> RegexAutomaton.compile("[a-z]{1,999}", 0, 1_000_000))
                .hasMessageContaining("too large");
    }

    /** Every text of up to {@code most} code points from the alphabet. */
    private static List<String> texts(int most) {
        List<String> texts = new ArrayList<>(List.of(""));
        List<String> last = List.of("");
        for (int length = 1; length <= most; length++) {
            List<String> longer = new ArrayList<>();
            for (String text : last) {
                for (int codePoint : ALPHABET) {
                    longer.add(text + Character.toString(codePoint));
                }
            }
            texts.addAll(longer);
            last = longer;
        }
        return texts;
    }

    private static RegexAutomaton.Position feedAll(RegexAutomaton automaton, String text) {
        RegexAutomaton.Position position = automaton.start();
        for (int i = 0; i < text.length() && position != null; i++) {
            position = automaton.feed(position, text.charAt(i));
        }
        return position;
    }

    /** Whether some units of the alphabet lead from {@code position} to a whole text (a search, 12 units deep). */
    private static boolean finishable(RegexAutomaton automaton, RegexAutomaton.Position position) {
        Set<RegexAutomaton.Position> seen = new HashSet<>();
        ArrayDeque<RegexAutomaton.Position> queue = new ArrayDeque<>(List.of(position));
        for (int depth = 0; depth <= 12 && !queue.isEmpty(); depth++) {
            ArrayDeque<RegexAutomaton.Position> next = new ArrayDeque<>();
            for (RegexAutomaton.Position at : queue) {
                if (automaton.accepts(at)) {
                    return true;
                }
                for (int codePoint : ALPHABET) {
                    RegexAutomaton.Position after = at;
                    for (char unit : Character.toChars(codePoint)) {
                        after = after == null ? null : automaton.feed(after, unit);
                    }
                    if (after != null && seen.add(after)) {
                        next.add(after);
                    }
                }
                // A high half alone continues only with its low half.
                RegexAutomaton.Position low = automaton.feed(at, Character.lowSurrogate(0x1F600));
                if (low != null && seen.add(low)) {
                    next.add(low);
                }
            }
            queue = next;
        }
        return false;
    }
}
