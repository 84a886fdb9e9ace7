package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The heap selection and the key sort agree with a full sort, ties included. */
class TopTokensTest {

    @ParameterizedTest(name = "vocab={0} k={1}")
    @CsvSource({"1,1", "10,3", "10,10", "10,20", "1000,1", "1000,40", "1000,999", "5000,257"})
    void largestEqualsThePrefixOfAFullSort(int vocab, int k) {
        float[] scores = scoresWithTiesAndMinusInfinity(vocab, vocab * 31L + k);
        int[] expected = fullSort(scores, vocab);
        int finite = (int) IntStream.range(0, vocab).filter(i -> scores[i] != Float.NEGATIVE_INFINITY).count();

        int[] out = new int[Math.max(k, 1)];
        int found = TopTokens.largest(scores, vocab, k, out);

        assertThat(found).isEqualTo(Math.min(k, finite));
        assertThat(Arrays.copyOf(out, found)).containsExactly(Arrays.copyOf(expected, found));
    }

    @Test
    void readsOnlyTheGivenLength() {
        float[] scores = {1, 5, 2, 100, 200};
        int[] out = new int[2];
        assertThat(TopTokens.largest(scores, 3, 2, out)).isEqualTo(2);
        assertThat(out).containsExactly(1, 2);
    }

    @ParameterizedTest(name = "vocab={0}")
    @CsvSource({"1", "7", "1000"})
    void sortDescendingEqualsAFullSort(int vocab) {
        float[] scores = scoresWithTiesAndMinusInfinity(vocab, vocab);
        int[] finite = IntStream.range(0, vocab).filter(i -> scores[i] != Float.NEGATIVE_INFINITY).toArray();
        int[] ids = finite.clone();
        // Shuffle so the input order carries no information.
        SplittableRandom random = new SplittableRandom(vocab);
        for (int i = ids.length - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = ids[i];
            ids[i] = ids[j];
            ids[j] = t;
        }
        TopTokens.sortDescending(scores, ids, ids.length);
        assertThat(ids).containsExactly(fullSort(scores, vocab));
    }

    /** Values from a small set (many ties), negatives, zeros of both signs, and some -infinity. */
    static float[] scoresWithTiesAndMinusInfinity(int vocab, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] scores = new float[vocab];
        for (int i = 0; i < vocab; i++) {
            int pick = random.nextInt(20);
            scores[i] = pick == 0 ? Float.NEGATIVE_INFINITY : pick == 1 ? -0.0f : (pick - 10) * 0.5f;
        }
        return scores;
    }

    /** Finite ids by score descending (-0.0 equal to 0.0, as float comparison has it), then id ascending. */
    static int[] fullSort(float[] scores, int vocab) {
        return IntStream.range(0, vocab)
                .filter(i -> scores[i] != Float.NEGATIVE_INFINITY)
                .boxed()
                .sorted(Comparator.<Integer>comparingDouble(i -> -(scores[i] + 0.0f)).thenComparingInt(i -> i))
                .mapToInt(Integer::intValue)
                .toArray();
    }
}
