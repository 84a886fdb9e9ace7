package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class StopMatcherTest {

    @Test
    void findsAStopStringSplitAcrossDeltas() {
        StopMatcher matcher = new StopMatcher(List.of("</answer>"));
        StopMatcher.Result first = matcher.accept("The answer is 4</an");
        assertThat(first).isEqualTo(new StopMatcher.Result("The answer is 4", false, null));
        StopMatcher.Result second = matcher.accept("swer> and more");
        assertThat(second).isEqualTo(new StopMatcher.Result("", true, "</answer>"));
        assertThat(matcher.stopped()).isTrue();
        assertThat(matcher.flush()).isEmpty();
    }

    @Test
    void releasesAFalsePartialMatch() {
        StopMatcher matcher = new StopMatcher(List.of("<stop>"));
        assertThat(matcher.accept("a <st").text()).isEqualTo("a ");
        assertThat(matcher.accept("ory>").text()).isEqualTo("<story>");
        assertThat(matcher.stopped()).isFalse();
    }

    @Test
    void emitsExactlyTheTextBeforeTheStop() {
        StopMatcher matcher = new StopMatcher(List.of("STOP"));
        assertThat(matcher.accept("Hello STOP world")).isEqualTo(new StopMatcher.Result("Hello ", true, "STOP"));
    }

    @Test
    void theEarliestStartingStopWins() {
        StopMatcher matcher = new StopMatcher(List.of("world", "lo w"));
        assertThat(matcher.accept("Hello world")).isEqualTo(new StopMatcher.Result("Hel", true, "lo w"));
    }

    @Test
    void holdsOnlyWhatCouldStillBecomeAStop() {
        StopMatcher matcher = new StopMatcher(List.of("aab"));
        assertThat(matcher.accept("a").text()).isEmpty();
        assertThat(matcher.accept("a").text()).isEmpty();
        assertThat(matcher.accept("a").text()).isEqualTo("a");
        assertThat(matcher.accept("b")).isEqualTo(new StopMatcher.Result("", true, "aab"));
    }

    /**
     * Before min_tokens (matching off) a whole stop string passes; text that may begin one is still
     * held, so a stop string ending in the first delta matched is found from where it began.
     */
    @Test
    void withMatchingOffStopStringsPassButTheirBeginningsWait() {
        StopMatcher matcher = new StopMatcher(List.of("</s>"));
        assertThat(matcher.accept("a</s>b", false)).isEqualTo(new StopMatcher.Result("a</s>b", false, null));
        assertThat(matcher.accept("c</", false)).isEqualTo(new StopMatcher.Result("c", false, null));
        assertThat(matcher.accept("s> d", true)).isEqualTo(new StopMatcher.Result("", true, "</s>"));

        StopMatcher late = new StopMatcher(List.of("</s>"));
        assertThat(late.accept("x</s>", false).text()).isEqualTo("x</s>");
        assertThat(late.accept("y", true)).as("a stop string that ended before matching began")
                .isEqualTo(new StopMatcher.Result("y", false, null));
    }

    @Test
    void theStopStringEndsTheTextWhenIncluded() {
        StopMatcher matcher = new StopMatcher(List.of("</an", "</answer>"), true);
        assertThat(matcher.accept("The answer is 4</an")).isEqualTo(new StopMatcher.Result("The answer is 4</an", true,
                "</an"));
        StopMatcher split = new StopMatcher(List.of("STOP"), true);
        assertThat(split.accept("ab ST").text()).isEqualTo("ab ");
        assertThat(split.accept("OP and more")).isEqualTo(new StopMatcher.Result("STOP", true, "STOP"));
    }

    @Test
    void flushReleasesHeldTextWhenGenerationEndsOtherwise() {
        StopMatcher matcher = new StopMatcher(List.of("<end>"));
        assertThat(matcher.accept("abc<e").text()).isEqualTo("abc");
        assertThat(matcher.flush()).isEqualTo("<e");
    }

    @Test
    void withoutStopStringsEverythingPassesThrough() {
        StopMatcher matcher = new StopMatcher(List.of());
        assertThat(matcher.accept("any <text>").text()).isEqualTo("any <text>");
    }

    @Test
    void refusesTextAfterAStopAndEmptyStopStrings() {
        StopMatcher matcher = new StopMatcher(List.of("x"));
        matcher.accept("x");
        assertThatThrownBy(() -> matcher.accept("more")).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> new StopMatcher(List.of(""))).isInstanceOf(IllegalArgumentException.class);
    }

    /**
     * Random texts cut into random deltas: the emitted text equals the text up to the first stop string that
     * is complete at some delta boundary (streaming semantics), or the whole text when none appears.
     */
    @Test
    void emittedTextEqualsTheStreamingReference() {
        SplittableRandom random = new SplittableRandom(11);
        String alphabet = "ab<>/é中";
        for (int trial = 0; trial < 2000; trial++) {
            List<String> stops = new ArrayList<>();
            for (int s = 0, n = 1 + random.nextInt(3); s < n; s++) {
                stops.add(randomText(random, alphabet, 1 + random.nextInt(4)));
            }
            String text = randomText(random, alphabet, random.nextInt(30));
            List<String> deltas = randomSplit(random, text);

            StopMatcher matcher = new StopMatcher(stops);
            StringBuilder emitted = new StringBuilder();
            for (String delta : deltas) {
                StopMatcher.Result result = matcher.accept(delta);
                emitted.append(result.text());
                if (result.stopped()) {
                    break;
                }
            }
            emitted.append(matcher.flush());
            assertThat(emitted.toString()).as("text %s, stops %s, deltas %s", text, stops, deltas)
                    .isEqualTo(reference(deltas, stops));
        }
    }

    private static String reference(List<String> deltas, List<String> stops) {
        StringBuilder seen = new StringBuilder();
        for (String delta : deltas) {
            seen.append(delta);
            int first = Integer.MAX_VALUE;
            for (String stop : stops) {
                int at = seen.indexOf(stop);
                if (at >= 0) {
                    first = Math.min(first, at);
                }
            }
            if (first != Integer.MAX_VALUE) {
                return seen.substring(0, first);
            }
        }
        return seen.toString();
    }

    private static String randomText(SplittableRandom random, String alphabet, int length) {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < length; i++) {
            text.append(alphabet.charAt(random.nextInt(alphabet.length())));
        }
        return text.toString();
    }

    private static List<String> randomSplit(SplittableRandom random, String text) {
        List<String> deltas = new ArrayList<>();
        int i = 0;
        while (i < text.length()) {
            int end = Math.min(text.length(), i + random.nextInt(5));
            deltas.add(text.substring(i, end));
            i = end;
        }
        return deltas;
    }
}
