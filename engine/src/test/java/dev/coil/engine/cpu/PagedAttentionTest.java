package dev.coil.engine.cpu;

import static dev.coil.engine.cpu.F32Assertions.assertClose;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.load.DType;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.PagedKeyValues;
import dev.coil.engine.ref.ReferenceOps;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Paged attention, in place (decode) and gathered (prefill), against the double-precision reference. */
class PagedAttentionTest {

    /** (tokens, past): decode after an empty, short and long cache, a few new tokens, and one prefill chunk. */
    private static final int[][] TOKENS_AND_PAST = {{1, 0}, {1, 999}, {2, 17}, {3, 500}, {4, 1000}, {4, 0},
            {PagedAttention.IN_PLACE_ROWS + 5, 40}};

    private final Arena arena = Arena.ofShared();
    // Four threads: a long enough cache is then split along the keys and merged.
    private final Parallel parallel = new Parallel(4);
    private final PagedAttention paged = new PagedAttention(new FlashAttention(parallel), parallel);
    private final Ops reference = new ReferenceOps();

    @AfterEach
    void closeArena() {
        arena.close();
    }

    /**
     * Random q and a cache holding random keys and values for past + tokens positions in shuffled
     * blocks; every other byte of the cache (free blocks, rows past the end) is NaN, which must never be read.
     */
    private record Case(AttentionShape shape, int tokens, int past, float scale, float[] q, PagedKeyValues cache,
            int[] table) {

        static Case random(Arena arena, AttentionShape shape, DType dtype, int blockSize, int tokens, int past,
                long seed) {
            SplittableRandom random = new SplittableRandom(seed);
            int length = past + tokens;
            int used = (length + blockSize - 1) / blockSize;
            int blocks = 2 * used + 3;
            PagedKeyValues cache = new PagedKeyValues(arena, dtype, blocks, blockSize, shape.kvHeads(),
                    shape.headDim());
            cache.keys().fill((byte) 0xff);
            cache.values().fill((byte) 0xff);
            int[] table = shuffledBlocks(random, blocks, used);
            float[] keys = gaussian(random, length * cache.rowWidth(), 1);
            float[] values = gaussian(random, length * cache.rowWidth(), 1);
            cache.write(table, 0, length, keys, values);
            // Wide enough that softmax rows are peaked, not uniform.
            float[] q = gaussian(random, tokens * shape.queryHeads() * shape.headDim(), 2);
            return new Case(shape, tokens, past, (float) (1 / Math.sqrt(shape.headDim())), q, cache, table);
        }

        float[] run(Ops ops) {
            float[] out = newOutput();
            ops.pagedAttention(shape, tokens, past, scale, q, cache, table, out);
            return out;
        }

        float[] run(PagedAttention attention) {
            float[] out = newOutput();
            attention.forward(shape, tokens, past, scale, q, cache, table, out);
            return out;
        }

        /** Contiguous attention over the same (already rounded) keys and values. */
        float[] runContiguous(FlashAttention attention) {
            int length = past + tokens;
            float[] keys = new float[length * cache.rowWidth()];
            float[] values = new float[keys.length];
            cache.gather(table, 0, length, keys, values);
            float[] out = newOutput();
            attention.forward(shape, tokens, past, scale, q, keys, values, out);
            return out;
        }

        private float[] newOutput() {
            float[] out = new float[tokens * shape.queryHeads() * shape.headDim()];
            Arrays.fill(out, Float.NaN);
            return out;
        }
    }

    private static int[] shuffledBlocks(SplittableRandom random, int blocks, int used) {
        int[] order = new int[blocks];
        for (int i = 0; i < blocks; i++) {
            order[i] = i;
        }
        for (int i = blocks - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int swap = order[i];
            order[i] = order[j];
            order[j] = swap;
        }
        return Arrays.copyOf(order, used);
    }

    private static float[] gaussian(SplittableRandom random, int count, double deviation) {
        float[] values = new float[count];
        for (int i = 0; i < count; i++) {
            values[i] = (float) (deviation * random.nextGaussian());
        }
        return values;
    }

    /** Every dtype, head dim and group; the block sizes rotate so that each meets every head dim and group. */
    static Stream<Arguments> layouts() {
        int[] headDims = {64, 80, 24};
        int[] groups = {1, 2, 4};
        int[] blockSizes = {1, 16, 32};
        Stream.Builder<Arguments> cases = Stream.builder();
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            for (int h = 0; h < headDims.length; h++) {
                for (int g = 0; g < groups.length; g++) {
                    int blockSize = blockSizes[(h + g + (dtype == DType.BF16 ? 1 : 0)) % blockSizes.length];
                    cases.add(Arguments.of(dtype, headDims[h], groups[g], blockSize));
                }
            }
        }
        return cases.build();
    }

    @ParameterizedTest(name = "{0}, headDim {1}, group {2}, block size {3}")
    @MethodSource("layouts")
    void matchesTheReference(DType dtype, int headDim, int group, int blockSize) {
        AttentionShape shape = new AttentionShape(2 * group, 2, headDim);
        for (int[] tokensAndPast : TOKENS_AND_PAST) {
            int tokens = tokensAndPast[0];
            int past = tokensAndPast[1];
            Case in = Case.random(arena, shape, dtype, blockSize, tokens, past,
                    31L * headDim + 7L * group + blockSize + 1000L * past + tokens);

            assertClose(in.run(paged), in.run(reference), tokens + " tokens after " + past);
        }
    }

    static Stream<Arguments> decodeShapes() {
        Stream.Builder<Arguments> cases = Stream.builder();
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            for (int group : new int[] {1, 2, 4}) {
                cases.add(Arguments.of(dtype, group));
            }
        }
        return cases.build();
    }

    @ParameterizedTest(name = "{0}, group {1}")
    @MethodSource("decodeShapes")
    void decodeEqualsContiguousFlashAttention(DType dtype, int group) {
        AttentionShape shape = new AttentionShape(3 * group, 3, 80);
        FlashAttention contiguous = new FlashAttention(parallel);
        for (int tokens = 1; tokens <= 4; tokens++) {
            assertThat(PagedAttention.attendsInPlace(tokens, group)).as("in place").isTrue();
            for (int past : new int[] {5, 1100}) {
                Case in = Case.random(arena, shape, dtype, 16, tokens, past, 97L * past + 11L * group + tokens);

                assertClose(in.run(paged), in.runContiguous(contiguous), tokens + " tokens after " + past);
            }
        }
    }

    @ParameterizedTest(name = "group {0}")
    @MethodSource("groups")
    void bothSidesOfTheInPlaceLimitMatchTheReference(int group) {
        AttentionShape shape = new AttentionShape(2 * group, 2, 24);
        int inPlace = PagedAttention.IN_PLACE_ROWS / group;
        assertThat(PagedAttention.attendsInPlace(inPlace, group)).isTrue();
        assertThat(PagedAttention.attendsInPlace(inPlace + 1, group)).isFalse();
        for (int tokens : new int[] {inPlace, inPlace + 1}) {
            Case in = Case.random(arena, shape, DType.BF16, 16, tokens, 300, 13L * group + tokens);

            assertClose(in.run(paged), in.run(reference), tokens + " tokens");
        }
    }

    static Stream<Integer> groups() {
        return Stream.of(1, 2, 4, 8);
    }

    @Test
    void everyThreadCountGivesTheSameAnswer() {
        AttentionShape shape = new AttentionShape(8, 2, 24);
        Case decode = Case.random(arena, shape, DType.BF16, 16, 1, 3000, 5);
        Case fewTokens = Case.random(arena, shape, DType.F32, 32, 3, 1500, 6);
        float[] expectedDecode = decode.run(reference);
        float[] expectedFewTokens = fewTokens.run(reference);
        for (int threads : new int[] {1, 2, 3, 16}) {
            Parallel threadPool = new Parallel(threads);
            PagedAttention attention = new PagedAttention(new FlashAttention(threadPool), threadPool);
            assertClose(decode.run(attention), expectedDecode, "one token on " + threads + " threads");
            assertClose(fewTokens.run(attention), expectedFewTokens, "three tokens on " + threads + " threads");
        }
    }

    @Test
    void decodingStepByStepEqualsOnePrefill() {
        AttentionShape shape = new AttentionShape(4, 2, 64);
        int past = 20;
        int tokens = 120;
        Case in = Case.random(arena, shape, DType.BF16, 16, tokens, past, 8);
        float[] prefill = in.run(paged);

        int row = shape.queryHeads() * shape.headDim();
        float[] stepwise = new float[tokens * row];
        for (int t = 0; t < tokens; t++) {
            float[] q = Arrays.copyOfRange(in.q(), t * row, (t + 1) * row);
            float[] out = new float[row];
            paged.forward(shape, 1, past + t, in.scale(), q, in.cache(), in.table(), out);
            System.arraycopy(out, 0, stepwise, t * row, row);
        }

        assertClose(stepwise, prefill, "single-token outputs");
    }

    @Test
    void cpuOpsDecodesInPlaceToo() {
        AttentionShape shape = new AttentionShape(4, 2, 64);
        Case in = Case.random(arena, shape, DType.BF16, 16, 1, 700, 9);

        assertClose(in.run(new CpuOps(new Parallel(2))), in.run(reference), "decode through CpuOps");
    }

    @Test
    void rejectsACacheOfAnotherShape() {
        Case in = Case.random(arena, new AttentionShape(4, 2, 64), DType.F32, 16, 1, 10, 10);
        float[] out = new float[4 * 64];

        assertThatThrownBy(() -> paged.forward(new AttentionShape(4, 1, 64), 1, 10, in.scale(), in.q(), in.cache(),
                in.table(), out))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("2 kv heads of dim 64")
                .hasMessageContaining("1 of dim 64");
    }

    @Test
    void rejectsABlockTableTooShortForTheSequence() {
        Case in = Case.random(arena, new AttentionShape(4, 2, 64), DType.F32, 16, 1, 10, 11);
        float[] out = new float[4 * 64];

        assertThatThrownBy(() -> paged.forward(in.shape(), 1, 16, in.scale(), in.q(), in.cache(), in.table(), out))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("block table of 1 blocks of 16 positions cannot hold past 16 + 1 tokens");
        assertThat(in.table()).hasSize(1);
    }
}
