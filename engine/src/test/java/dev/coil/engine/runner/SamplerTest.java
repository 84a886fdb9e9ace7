package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Sampling against its definition. Every random draw comes from a fixed seed, so each test is
 * deterministic; the statistical bounds are loose enough that any correct implementation passes them.
 */
class SamplerTest {

    private static final TokenHistory EMPTY = new TokenHistory(new int[0]);

    /** log(p) for p = 0.5, 0.3, 0.15, 0.05. */
    private static final float[] FOUR = logs(0.5, 0.3, 0.15, 0.05);

    @Test
    void greedyIsTheArgmaxWithTiesToTheLowestId() {
        Sampler greedy = new Sampler(SamplingParams.greedy());
        SplittableRandom random = new SplittableRandom(1);
        for (int trial = 0; trial < 50; trial++) {
            float[] logits = randomLogits(random, 1000);
            assertThat(greedy.sample(logits, EMPTY)).isEqualTo(argmax(logits));
        }
        assertThat(greedy.sample(new float[] {1, 3, Float.NEGATIVE_INFINITY, 3}, EMPTY)).isEqualTo(1);
    }

    /**
     * A temperature too small to divide float logits by (1e-320: its inverse overflows, and the weights
     * were NaN) draws as greedy, as does anything below vLLM's 1e-5; at 1e-5 itself it still draws.
     */
    @Test
    void temperaturesBelowOneHundredThousandthAreGreedy() {
        SplittableRandom random = new SplittableRandom(5);
        for (double temperature : new double[] {Double.MIN_VALUE, 1e-320, 1e-39, 1e-6, 9.99e-6}) {
            SamplingParams params = SamplingParams.builder().temperature(temperature).topP(0.9).seed(4L).build();
            assertThat(params.isGreedy()).as("temperature %s", temperature).isTrue();
            assertThat(params.temperature()).isZero();
            Sampler sampler = new Sampler(params);
            for (int trial = 0; trial < 20; trial++) {
                float[] logits = randomLogits(random, 1000);
                assertThat(sampler.sample(logits, EMPTY)).isEqualTo(argmax(logits));
            }
        }
        assertThat(SamplingParams.builder().temperature(SamplingParams.GREEDY_BELOW).build().isGreedy()).isFalse();
    }

    @Test
    void theSameSeedGivesTheSameTokens() {
        SamplingParams params = SamplingParams.builder().temperature(0.9).topP(0.95).seed(42L).build();
        assertThat(drawSequence(params, 300)).isEqualTo(drawSequence(params, 300));
    }

    @Test
    void differentSeedsGiveDifferentTokens() {
        SamplingParams params = SamplingParams.builder().seed(1L).build();
        List<Integer> one = drawSequence(params, 300);
        List<Integer> two = drawSequence(params.withSeed(2L), 300);
        long differing = IntStream.range(0, one.size()).filter(i -> !one.get(i).equals(two.get(i))).count();
        // Independent draws from the same distributions disagree about 3 times in 4 here.
        assertThat(differing).isGreaterThan(100);
    }

    @Test
    void topKOfOneAndATinyTopPAreGreedy() {
        SplittableRandom random = new SplittableRandom(2);
        Sampler topK = new Sampler(SamplingParams.builder().temperature(1.3).topK(1).seed(3L).build());
        Sampler topP = new Sampler(SamplingParams.builder().temperature(1.3).topP(1e-9).seed(3L).build());
        Sampler both = new Sampler(SamplingParams.builder().temperature(1.3).topK(5).topP(1e-9).seed(3L).build());
        for (int trial = 0; trial < 50; trial++) {
            float[] logits = randomLogits(random, 3000);
            int expected = argmax(logits);
            assertThat(topK.sample(logits, EMPTY)).isEqualTo(expected);
            assertThat(topP.sample(logits, EMPTY)).isEqualTo(expected);
            assertThat(both.sample(logits, EMPTY)).isEqualTo(expected);
        }
        float[] tied = {1, 3, 0, 3};
        assertThat(topK.sample(tied, EMPTY)).isEqualTo(1);
        assertThat(topP.sample(tied, EMPTY)).isEqualTo(1);
    }

    @ParameterizedTest(name = "top_k={0} top_p={1} min_p={2} -> {3}")
    @CsvSource({
        "0, 1.0,  0.0,  0 1 2 3",
        "2, 1.0,  0.0,  0 1",
        "0, 0.75, 0.0,  0 1",
        "0, 0.85, 0.0,  0 1 2",
        "3, 0.5,  0.0,  0",
        "0, 1.0,  0.2,  0 1 2",
        "0, 1.0,  0.7,  0",
        "0, 0.85, 0.4,  0 1",
    })
    void filtersKeepExactlyTheExpectedTokens(int topK, double topP, double minP, String expected) {
        SamplingParams params = SamplingParams.builder().topK(topK).topP(topP).minP(minP).seed(5L).build();
        int[] survivors = new Sampler(params).survivors(FOUR, EMPTY);
        int[] expectedIds = Arrays.stream(expected.split(" ")).mapToInt(Integer::parseInt).toArray();
        assertThat(survivors).containsExactly(expectedIds);

        Sampler sampler = new Sampler(params);
        boolean[] drawn = new boolean[4];
        for (int i = 0; i < 4000; i++) {
            drawn[sampler.sample(FOUR, EMPTY)] = true;
        }
        for (int id = 0; id < 4; id++) {
            final int token = id;
            boolean survives = Arrays.stream(survivors).anyMatch(s -> s == token);
            assertThat(drawn[id]).as("token %d drawn", id).isEqualTo(survives);
        }
    }

    @ParameterizedTest(name = "temperature={0}")
    @CsvSource({"1.0", "0.5", "2.0"})
    void drawsFollowTheTemperatureScaledSoftmax(double temperature) {
        float[] logits = {0.5f, 1.5f, -0.3f, 1.0f};
        double[] expected = softmax(logits, temperature);
        int draws = 40_000;
        int[] counts = new int[4];
        Sampler sampler = new Sampler(SamplingParams.builder().temperature(temperature).seed(7L).build());
        for (int i = 0; i < draws; i++) {
            counts[sampler.sample(logits, EMPTY)]++;
        }
        // 3 degrees of freedom: P(chi² > 16.27) = 0.001 for a correct sampler.
        assertThat(chiSquare(counts, expected, draws)).isLessThan(16.27);
        // The same counts are far from the untempered distribution, so the bound above has teeth.
        if (temperature != 1.0) {
            assertThat(chiSquare(counts, softmax(logits, 1.0), draws)).isGreaterThan(100);
        }
    }

    @Test
    void penaltiesTransformTheLogitsAsSpecified() {
        TokenHistory history = new TokenHistory(new int[] {0, 1, 1});
        history.append(2);
        history.append(2);
        history.append(3);
        SamplingParams params = SamplingParams.builder()
                .repetitionPenalty(2).presencePenalty(0.5).frequencyPenalty(0.25).build();
        float[] logits = {2, -2, 1, 0.5f, 3};

        Sampler.applyPenalties(logits, logits.length, history, params);

        // 0, 1: prompt only, so the repetition penalty alone (2/2, -2·2).
        // 2: generated twice: 1/2 - (0.5 + 0.25·2). 3: generated once: 0.5/2 - (0.5 + 0.25). 4: untouched.
        assertThat(logits).containsExactly(1f, -4f, -0.5f, -0.5f, 3f);
    }

    @Test
    void theLogitBiasIsAddedBeforeThePenalties() {
        TokenHistory history = new TokenHistory(new int[] {0});
        history.append(1);
        SamplingParams params = SamplingParams.builder().repetitionPenalty(2).presencePenalty(0.5)
                .logitBias(Map.of(0, 4f, 1, -1f, 2, 0.5f, 7, 100f)).build();
        float[] logits = {2, 1, 1, 3};

        Sampler.applyPenalties(logits, logits.length, history, params);

        // 0: (2 + 4) / 2, not 2 / 2 + 4. 1: (1 - 1) · 2 - 0.5 (0 is not positive). 2: bias only.
        // 3: untouched. 7 is beyond the vocabulary, ignored.
        assertThat(logits).containsExactly(3f, -0.5f, 1.5f, 3f);
    }

    @Test
    void aLogitBiasOfPlusOrMinusOneHundredDecidesTheToken() {
        SplittableRandom random = new SplittableRandom(5);
        for (int trial = 0; trial < 20; trial++) {
            float[] logits = randomLogits(random, 500);
            float[] given = logits.clone();
            int forced = random.nextInt(500);
            int top = argmax(logits);
            assertThat(new Sampler(SamplingParams.greedy().withLogitBias(Map.of(forced, 100f))).sample(logits, EMPTY))
                    .isEqualTo(forced);
            assertThat(new Sampler(SamplingParams.builder().seed((long) trial).logitBias(Map.of(forced, 100f)).build())
                    .sample(logits, EMPTY)).isEqualTo(forced);
            assertThat(new Sampler(SamplingParams.greedy().withLogitBias(Map.of(top, -100f))).sample(logits, EMPTY))
                    .isNotEqualTo(top);
            assertThat(logits).as("the caller's logits are not modified").containsExactly(given);
        }
    }

    @Test
    void logitBiasValuesOutsideTheirRangeAreRefused() {
        assertThatThrownBy(() -> SamplingParams.greedy().withLogitBias(Map.of(3, 100.5f)))
                .hasMessage("logit_bias values must be in [-100, 100], got 100.5 for token 3");
        assertThatThrownBy(() -> SamplingParams.greedy().withLogitBias(Map.of(3, Float.NaN)))
                .hasMessage("logit_bias values must be in [-100, 100], got NaN for token 3");
        assertThatThrownBy(() -> SamplingParams.greedy().withLogitBias(Map.of(-1, 1f)))
                .hasMessage("logit_bias must map non-negative token ids, got -1");
    }

    @Test
    void presenceAndFrequencyIgnoreThePrompt() {
        TokenHistory history = new TokenHistory(new int[] {0, 0, 0});
        float[] logits = {1, 1};
        Sampler.applyPenalties(logits, 2, history,
                SamplingParams.builder().presencePenalty(1).frequencyPenalty(1).build());
        assertThat(logits).containsExactly(1f, 1f);
        assertThat(history.generatedCount()).isZero();
        assertThat(history.outputCount(0)).isZero();
    }

    @Test
    void aStrongRepetitionPenaltyChangesTheGreedyChoice() {
        TokenHistory history = new TokenHistory(new int[] {1});
        float[] logits = {1.0f, 1.5f};
        assertThat(new Sampler(SamplingParams.greedy()).sample(logits, history)).isEqualTo(1);
        assertThat(new Sampler(SamplingParams.greedy().withRepetitionPenalty(2)).sample(logits, history))
                .isEqualTo(0);
        assertThat(logits).as("the caller's logits are not modified").containsExactly(1.0f, 1.5f);
    }

    @Test
    void minusInfinityIsNeverDrawnAndNanIsRejected() {
        float inf = Float.NEGATIVE_INFINITY;
        float[] logits = {inf, 0.2f, inf, 0.1f, inf};
        Sampler sampler = new Sampler(SamplingParams.builder().seed(9L).build());
        for (int i = 0; i < 1000; i++) {
            assertThat(sampler.sample(logits, EMPTY)).isIn(1, 3);
        }
        assertThatThrownBy(() -> sampler.sample(new float[] {inf, inf}, EMPTY))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("-infinity");
        assertThatThrownBy(() -> sampler.sample(new float[] {0, Float.NaN}, EMPTY))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("token 1");
    }

    /** On a 150k vocabulary the threshold search of top-p keeps exactly the tokens a full sort would. */
    @ParameterizedTest(name = "temperature={0} top_k={1} top_p={2} min_p={3}")
    @CsvSource({
        "1.0, 0,  0.9,  0.0",
        "0.7, 0,  0.5,  0.0",
        "3.0, 0,  0.99, 0.0",
        "1.0, 50, 0.9,  0.0",
        "1.0, 0,  0.95, 0.05",
        "1.0, 0,  1.0,  0.3",
    })
    void largeVocabularyFiltersMatchAFullSort(double temperature, int topK, double topP, double minP) {
        float[] logits = randomLogits(new SplittableRandom(13), 150_000);
        logits[77] = Float.NEGATIVE_INFINITY;
        SamplingParams params = SamplingParams.builder()
                .temperature(temperature).topK(topK).topP(topP).minP(minP).build();
        int[] survivors = new Sampler(params).survivors(logits, EMPTY);
        int[] expected = referenceSurvivors(logits, params);
        // Compared by hand: AssertJ's diff of two long arrays takes minutes.
        assertThat(survivors.length).as("how many survive").isEqualTo(expected.length);
        assertThat(Arrays.mismatch(survivors, expected)).as("first differing survivor").isEqualTo(-1);
    }

    @Test
    void logSoftmaxIsNormalisedAndShiftInvariant() {
        float[] logits = randomLogits(new SplittableRandom(17), 5000);
        logits[3] = Float.NEGATIVE_INFINITY;
        float[] logprobs = Sampler.logSoftmax(logits);
        double total = 0;
        for (float logprob : logprobs) {
            total += Math.exp(logprob);
        }
        assertThat(total).isCloseTo(1.0, within(1e-5));
        assertThat(logprobs[3]).isEqualTo(Float.NEGATIVE_INFINITY);

        float[] shifted = logits.clone();
        for (int i = 0; i < shifted.length; i++) {
            shifted[i] += 40;
        }
        float[] again = Sampler.logSoftmax(shifted);
        for (int i = 0; i < logprobs.length; i++) {
            if (i != 3) {
                assertThat(again[i]).isCloseTo(logprobs[i], within(1e-4f));
            }
        }
    }

    @Test
    void topLogprobsAreSortedWithTiesToLowerIds() {
        float inf = Float.NEGATIVE_INFINITY;
        float[] logprobs = {-2, -1, -3, -1, inf, -0.5f};
        assertThat(Sampler.topLogprobs(logprobs, 3)).containsExactly(
                new TokenLogprob(5, -0.5f), new TokenLogprob(1, -1), new TokenLogprob(3, -1));
        assertThat(Sampler.topLogprobs(logprobs, 10)).hasSize(5).last().isEqualTo(new TokenLogprob(2, -3));
        assertThat(Sampler.topLogprobs(logprobs, 0)).isEmpty();
    }

    /** vLLM's rank: 1 + the tokens strictly more likely; a tie shares the better rank. */
    @Test
    void rankCountsTheTokensMoreLikely() {
        float inf = Float.NEGATIVE_INFINITY;
        float[] logprobs = {-2, -1, -3, -1, inf, -0.5f};
        assertThat(IntStream.range(0, logprobs.length).map(id -> Sampler.rank(logprobs, id)).toArray())
                .containsExactly(4, 2, 5, 2, 6, 1);
    }

    /** Steps 4 to 6 by full sort, in doubles. */
    private static int[] referenceSurvivors(float[] logits, SamplingParams params) {
        Integer[] order = IntStream.range(0, logits.length)
                .filter(i -> logits[i] != Float.NEGATIVE_INFINITY).boxed().toArray(Integer[]::new);
        Arrays.sort(order, Comparator.<Integer>comparingDouble(i -> -logits[i]).thenComparingInt(i -> i));
        int count = params.topK() > 0 ? Math.min(params.topK(), order.length) : order.length;
        double max = logits[order[0]];
        double[] weights = new double[count];
        double total = 0;
        for (int j = 0; j < count; j++) {
            weights[j] = Math.exp((logits[order[j]] - max) / params.temperature());
            total += weights[j];
        }
        if (params.topP() < 1) {
            double cumulative = 0;
            for (int j = 0; j < count; j++) {
                cumulative += weights[j];
                if (cumulative >= params.topP() * total) {
                    count = j + 1;
                    break;
                }
            }
        }
        List<Integer> kept = new ArrayList<>();
        for (int j = 0; j < count; j++) {
            if (weights[j] >= params.minP() * weights[0]) {
                kept.add(order[j]);
            }
        }
        return kept.stream().mapToInt(Integer::intValue).sorted().toArray();
    }

    private static List<Integer> drawSequence(SamplingParams params, int steps) {
        Sampler sampler = new Sampler(params);
        TokenHistory history = new TokenHistory(new int[] {1, 2});
        SplittableRandom logitSource = new SplittableRandom(99);
        List<Integer> tokens = new ArrayList<>();
        for (int step = 0; step < steps; step++) {
            int token = sampler.sample(randomLogits(logitSource, 8), history);
            history.append(token);
            tokens.add(token);
        }
        return tokens;
    }

    private static float[] randomLogits(SplittableRandom random, int vocab) {
        float[] logits = new float[vocab];
        for (int i = 0; i < vocab; i++) {
            logits[i] = (float) (random.nextGaussian() * 2);
        }
        return logits;
    }

    /** The lowest id of the largest logit. */
    static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    private static float[] logs(double... probabilities) {
        float[] out = new float[probabilities.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) Math.log(probabilities[i]);
        }
        return out;
    }

    private static double[] softmax(float[] logits, double temperature) {
        double[] p = new double[logits.length];
        double total = 0;
        for (int i = 0; i < logits.length; i++) {
            p[i] = Math.exp(logits[i] / temperature);
            total += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= total;
        }
        return p;
    }

    private static double chiSquare(int[] counts, double[] expected, int draws) {
        double chi = 0;
        for (int i = 0; i < counts.length; i++) {
            double e = expected[i] * draws;
            chi += (counts[i] - e) * (counts[i] - e) / e;
        }
        return chi;
    }
}
