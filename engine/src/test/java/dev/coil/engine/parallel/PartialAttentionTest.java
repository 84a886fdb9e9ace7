package dev.coil.engine.parallel;

import static dev.coil.engine.parallel.Close.assertClose;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.ops.AttentionShape;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The flash-style partial attention against its double-precision twin, and the log-sum-exp merge. */
class PartialAttentionTest {

    private static final Parallel PARALLEL = new Parallel(2);

    private static float[] random(SplittableRandom random, int length) {
        float[] values = new float[length];
        for (int i = 0; i < length; i++) {
            values[i] = (float) random.nextDouble(-1, 1);
        }
        return values;
    }

    /** Ascending positions with gaps, as a zigzag shard has: two runs. */
    private static int[] twoRuns(int count, int firstStart, int secondStart) {
        int half = count / 2;
        return IntStream.range(0, count).map(i -> i < half ? firstStart + i : secondStart + i - half).toArray();
    }

    @ParameterizedTest
    @CsvSource({"6, 2, 5, 7, 13", "4, 4, 19, 2, 70", "3, 1, 8, 9, 131", "2, 2, 16, 5, 1"})
    void matchesTheReferenceOnOddSizes(int queryHeads, int kvHeads, int headDim, int queries, int keyCount) {
        AttentionShape shape = new AttentionShape(queryHeads, kvHeads, headDim);
        SplittableRandom random = new SplittableRandom(queries * 31L + keyCount);
        float[] q = random(random, queries * queryHeads * headDim);
        float[] keys = random(random, keyCount * kvHeads * headDim);
        float[] values = random(random, keyCount * kvHeads * headDim);
        int[] keyPositions = twoRuns(keyCount, 3, keyCount + 30);
        // Queries spread over the keys' span and past it: some see none, some part, some all of them.
        int span = keyPositions[keyCount - 1] + 5;
        int[] queryPositions = IntStream.range(0, queries).map(i -> i * span / Math.max(1, queries - 1)).toArray();
        float scale = (float) (1 / Math.sqrt(headDim));

        float[] out = new float[q.length];
        float[] lse = new float[queries * queryHeads];
        PartialAttention.attend(PARALLEL, shape, scale, q, queryPositions, queries, keys, values, keyPositions,
                keyCount, out, lse);
        float[] expectedOut = new float[q.length];
        float[] expectedLse = new float[lse.length];
        PartialAttentionRef.attend(shape, scale, q, queryPositions, queries, keys, values, keyPositions, keyCount,
                expectedOut, expectedLse);

        for (int i = 0; i < lse.length; i++) {
            if (expectedLse[i] == Float.NEGATIVE_INFINITY) {
                assertThat(lse[i]).as("lse of a query that sees no key").isEqualTo(Float.NEGATIVE_INFINITY);
            } else {
                assertThat(lse[i]).as("lse[%d]", i).isCloseTo(expectedLse[i], org.assertj.core.data.Offset.offset(1e-5f));
            }
        }
        assertClose(out, expectedOut, 1e-5, "out");
    }

    @ParameterizedTest
    @CsvSource({"6, 2, 5, 11, 37, 3", "4, 1, 8, 6, 64, 4"})
    void partialsOverDisjointKeyBlocksMergeToTheWholeAttention(int queryHeads, int kvHeads, int headDim, int queries,
            int keyCount, int blocks) {
        AttentionShape shape = new AttentionShape(queryHeads, kvHeads, headDim);
        SplittableRandom random = new SplittableRandom(keyCount);
        int width = kvHeads * headDim;
        float[] q = random(random, queries * queryHeads * headDim);
        float[] keys = random(random, keyCount * width);
        float[] values = random(random, keyCount * width);
        int[] keyPositions = IntStream.range(0, keyCount).toArray();
        int[] queryPositions = IntStream.range(0, queries).map(i -> keyCount - queries + i).toArray();
        float scale = 0.4f;

        float[] expectedOut = new float[q.length];
        float[] expectedLse = new float[queries * queryHeads];
        PartialAttentionRef.attend(shape, scale, q, queryPositions, queries, keys, values, keyPositions, keyCount,
                expectedOut, expectedLse);

        float[] out = new float[q.length];
        float[] lse = new float[expectedLse.length];
        Arrays.fill(lse, Float.NEGATIVE_INFINITY);
        // Blocks in a scrambled order (as a ring delivers them), interleaved positions.
        for (int block : IntStream.range(0, blocks).map(i -> (i + blocks - 1) % blocks).toArray()) {
            int[] mine = IntStream.range(0, keyCount).filter(j -> j % blocks == block).toArray();
            float[] blockKeys = new float[mine.length * width];
            float[] blockValues = new float[mine.length * width];
            for (int i = 0; i < mine.length; i++) {
                System.arraycopy(keys, mine[i] * width, blockKeys, i * width, width);
                System.arraycopy(values, mine[i] * width, blockValues, i * width, width);
            }
            float[] partialOut = new float[q.length];
            float[] partialLse = new float[lse.length];
            PartialAttention.attend(PARALLEL, shape, scale, q, queryPositions, queries, blockKeys, blockValues, mine,
                    mine.length, partialOut, partialLse);
            PartialAttention.merge(lse.length, headDim, out, lse, partialOut, partialLse);
        }
        assertClose(out, expectedOut, 1e-5, "merged out");
        assertClose(lse, expectedLse, 1e-5, "merged lse");
    }
}
