package dev.coil.engine.parallel;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.model.Fixtures;
import dev.coil.engine.model.TestModels;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.ScoreResult;
import dev.coil.engine.runner.Scorer;
import dev.coil.engine.runner.TopLogprobAssertions;
import dev.coil.engine.runner.TokenLogprob;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Prompt logprobs with the context sharded over 2, 3 and 4 virtual devices, zigzag and contiguous,
 * against the one-device {@link Scorer}, on every fixture model. The prompts span many of the
 * fixtures' 4-token SSD chunks and each of the 2N shards holds several tokens; 53 divides by none
 * of the chunk counts.
 */
class ContextParallelScorerTest {

    static final CpuOps ONE_DEVICE = new CpuOps(new Parallel(1));
    private static final Offset<Float> LOGPROB = Offset.offset(1e-4f);

    static int[] prompt(int length, int vocab, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        return random.ints(length, 0, vocab).toArray();
    }

    static Stream<Arguments> fixtures() {
        return Fixtures.MODELS.stream().map(Arguments::of);
    }

    @ParameterizedTest
    @MethodSource("fixtures")
    void shardedLogprobsEqualOneDevice(String fixture) {
        LoadedModel model = TestModels.load(fixture);
        int vocab = model.config().vocabSize();
        for (int length : new int[] {53, 40}) {
            int[] ids = prompt(length, vocab, length);
            ScoreResult expected = new Scorer(model, ONE_DEVICE).score(ids, 3);
            for (int count : new int[] {2, 3, 4}) {
                for (ShardLayout layout : ShardLayout.values()) {
                    RingScore sharded = new ContextParallelScorer(model, TestDevices.of(count), layout).score(ids, 3);
                    assertThat(sharded.paths()).containsExactly("ring x" + count);
                    assertSameScores(sharded.result(), expected, fixture + " " + layout + " x" + count + " T=" + length);
                }
            }
        }
    }

    /** Fewer tokens than shards: some chunks, and with 4 devices whole devices, are empty. */
    @Test
    void promptsShorterThanTheShardCountStillScore() {
        LoadedModel model = TestModels.load("bamba");
        for (int length : new int[] {1, 3, 7}) {
            int[] ids = prompt(length, model.config().vocabSize(), 7);
            ScoreResult expected = new Scorer(model, ONE_DEVICE).score(ids, 2);
            RingScore sharded = new ContextParallelScorer(model, TestDevices.of(4), ShardLayout.ZIGZAG).score(ids, 2);
            assertSameScores(sharded.result(), expected, "bamba T=" + length);
        }
    }

    static void assertSameScores(ScoreResult actual, ScoreResult expected, String what) {
        assertThat(actual.tokenIds()).containsExactly(expected.tokenIds());
        assertThat(actual.logprobs()[0]).isNaN();
        for (int i = 1; i < expected.logprobs().length; i++) {
            assertThat(actual.logprobs()[i]).as("%s: logprob %d", what, i).isCloseTo(expected.logprobs()[i], LOGPROB);
        }
        assertThat(actual.ranks()).as("%s: ranks", what).containsExactly(expected.ranks());
        assertThat(actual.topLogprobs()).hasSameSizeAs(expected.topLogprobs());
        for (int i = 0; i < expected.topLogprobs().size(); i++) {
            List<TokenLogprob> actualTop = actual.topLogprobs().get(i);
            List<TokenLogprob> expectedTop = expected.topLogprobs().get(i);
            TopLogprobAssertions.assertSameTop(actualTop, expectedTop, LOGPROB.value, what + ", position " + i);
        }
    }
}
