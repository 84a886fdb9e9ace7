package dev.coil.engine.cpu;

import static dev.coil.engine.cpu.F32Assertions.assertClose;

import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Tiled online-softmax attention against the full-row double-precision reference. */
class FlashAttentionTest {

    // Four workers: a single decode token over a long cache is then split along the keys.
    private final Ops cpu = new CpuOps(new Parallel(4));
    private final Ops reference = new ReferenceOps();

    /** Random q, k, v; cache rows past past + tokens hold NaN, which must never be read. */
    private record Inputs(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys,
            float[] values) {

        static Inputs random(AttentionShape shape, int tokens, int past, long seed) {
            SplittableRandom random = new SplittableRandom(seed);
            int headDim = shape.headDim();
            int cacheRows = past + tokens + 3;
            int kvRow = shape.kvHeads() * headDim;
            float[] keys = new float[cacheRows * kvRow];
            float[] values = new float[cacheRows * kvRow];
            Arrays.fill(keys, Float.NaN);
            Arrays.fill(values, Float.NaN);
            for (int i = 0; i < (past + tokens) * kvRow; i++) {
                keys[i] = (float) random.nextGaussian();
                values[i] = (float) random.nextGaussian();
            }
            float[] q = new float[tokens * shape.queryHeads() * headDim];
            for (int i = 0; i < q.length; i++) {
                // Wide enough that softmax rows are peaked, not uniform.
                q[i] = (float) (2 * random.nextGaussian());
            }
            return new Inputs(shape, tokens, past, (float) (1 / Math.sqrt(headDim)), q, keys, values);
        }

        float[] run(Ops ops) {
            float[] out = new float[tokens * shape.queryHeads() * shape.headDim()];
            ops.attention(shape, tokens, past, scale, q, keys, values, out);
            return out;
        }
    }

    static Stream<Arguments> cases() {
        int[][] tokensAndPast = {{1, 0}, {1, 100}, {7, 0}, {37, 5}, {200, 0}, {1, 3000}};
        int[] headDims = {8, 17, 64};
        int[] kvHeads = {6, 3, 2};
        Stream.Builder<Arguments> cases = Stream.builder();
        for (int[] tp : tokensAndPast) {
            for (int headDim : headDims) {
                for (int kv : kvHeads) {
                    cases.add(Arguments.of(tp[0], tp[1], headDim, kv));
                }
            }
        }
        return cases.build();
    }

    @ParameterizedTest(name = "tokens {0}, past {1}, headDim {2}, 6 query heads on {3} kv heads")
    @MethodSource("cases")
    void matchesTheFullSoftmax(int tokens, int past, int headDim, int kvHeads) {
        AttentionShape shape = new AttentionShape(6, kvHeads, headDim);
        Inputs in = Inputs.random(shape, tokens, past, 1000L * tokens + 10L * past + headDim + kvHeads);

        assertClose(in.run(cpu), in.run(reference), "attention output");
    }

    static Stream<Arguments> decodeCases() {
        Stream.Builder<Arguments> cases = Stream.builder();
        for (int past : new int[] {1000, 2500, 5000}) {
            for (int group = 1; group <= 4; group++) {
                for (int headDim : new int[] {8, 17, 64, 128}) {
                    cases.add(Arguments.of(past, group, headDim));
                }
            }
        }
        return cases.build();
    }

    // From about 2048 keys on two threads (4096 on four) one unit of work takes every kv head of a key slice.
    @ParameterizedTest(name = "one token after {0}, group {1}, headDim {2}")
    @MethodSource("decodeCases")
    void decodingOverALongCacheMatchesTheFullSoftmax(int past, int group, int headDim) {
        AttentionShape shape = new AttentionShape(3 * group, 3, headDim);
        Inputs in = Inputs.random(shape, 1, past, 100L * past + 10L * group + headDim);
        float[] expected = in.run(reference);

        assertClose(in.run(cpu), expected, "decode on 4 threads");
        assertClose(in.run(new CpuOps(new Parallel(2))), expected, "decode on 2 threads");
    }

    @Test
    void prefillEqualsOneTokenAtATime() {
        AttentionShape shape = new AttentionShape(6, 2, 17);
        int past = 9;
        int tokens = 70;
        Inputs in = Inputs.random(shape, tokens, past, 7);
        float[] prefill = in.run(cpu);

        int row = shape.queryHeads() * shape.headDim();
        float[] stepwise = new float[tokens * row];
        for (int t = 0; t < tokens; t++) {
            float[] q = Arrays.copyOfRange(in.q(), t * row, (t + 1) * row);
            float[] out = new float[row];
            cpu.attention(shape, 1, past + t, in.scale(), q, in.keys(), in.values(), out);
            System.arraycopy(out, 0, stepwise, t * row, row);
        }

        assertClose(stepwise, prefill, "single-token outputs");
    }

    @Test
    void everyThreadCountGivesTheSameAnswer() {
        AttentionShape shape = new AttentionShape(4, 1, 32);
        Inputs decode = Inputs.random(shape, 1, 5000, 3);
        Inputs prefill = Inputs.random(shape, 90, 30, 4);
        float[] expectedDecode = decode.run(reference);
        float[] expectedPrefill = prefill.run(reference);
        for (int threads : new int[] {1, 2, 5, 16}) {
            Ops ops = new CpuOps(new Parallel(threads));
            assertClose(decode.run(ops), expectedDecode, "decode on " + threads + " threads");
            assertClose(prefill.run(ops), expectedPrefill, "prefill on " + threads + " threads");
        }
    }
}
