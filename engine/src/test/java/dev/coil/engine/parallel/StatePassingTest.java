package dev.coil.engine.parallel;

import static dev.coil.engine.parallel.Close.assertClose;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.SsmShape;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The state-passing kernels against their twin, and chunks scanned from zero plus passing against one sequential scan. */
class StatePassingTest {

    private static final Parallel PARALLEL = new Parallel(2);

    private static float[] uniform(SplittableRandom random, int length, double bound) {
        float[] values = new float[length];
        for (int i = 0; i < length; i++) {
            values[i] = (float) random.nextDouble(-bound, bound);
        }
        return values;
    }

    private static float[] decays(SplittableRandom random, int heads) {
        float[] A = new float[heads];
        for (int h = 0; h < heads; h++) {
            A[h] = (float) -Math.exp(random.nextDouble(-1, 1));
        }
        return A;
    }

    private static float[] timeSteps(SplittableRandom random, int count) {
        float[] dt = new float[count];
        for (int i = 0; i < dt.length; i++) {
            dt[i] = (float) Math.log1p(Math.exp(random.nextDouble(-3, 1)));
        }
        return dt;
    }

    @ParameterizedTest
    @CsvSource({"6, 5, 2, 11, 7", "4, 8, 4, 8, 1", "3, 3, 1, 17, 13"})
    void correctionAndPassMatchTheirReference(int heads, int headDim, int groups, int stateSize, int tokens) {
        SsmShape shape = new SsmShape(heads, headDim, groups, stateSize);
        SplittableRandom random = new SplittableRandom(heads * 100L + tokens);
        float[] A = decays(random, heads);
        float[] dt = timeSteps(random, tokens * heads);
        float[] C = uniform(random, tokens * groups * stateSize, 1);
        float[] incoming = uniform(random, shape.stateFloats(), 1);
        float[] local = uniform(random, shape.stateFloats(), 1);
        float[] y = uniform(random, tokens * shape.innerSize(), 1);

        float[] cumulative = StatePassing.cumulativeLogDecay(tokens, heads, dt, A);
        float[] corrected = y.clone();
        StatePassing.correct(PARALLEL, shape, tokens, cumulative, C, incoming, corrected);
        float[] expected = y.clone();
        StatePassingRef.correct(shape, tokens, dt, A, C, incoming, expected);
        assertClose(corrected, expected, 1e-5, "corrected y");

        float[] passed = StatePassing.pass(shape, incoming, StatePassing.totalLogDecay(tokens, heads, cumulative), local);
        assertClose(passed, StatePassingRef.pass(shape, tokens, dt, A, incoming, local), 1e-5, "outgoing state");
    }

    /**
     * The linearity the sharded Mamba forward rests on: scanning chunks from a zero state, passing
     * the states along and correcting each chunk's outputs gives the one sequential scan's outputs
     * and final state (chunks of odd lengths, one empty, one a single token).
     */
    @Test
    void chunksScannedFromZeroAndCorrectedEqualOneSequentialScan() {
        SsmShape shape = new SsmShape(6, 5, 3, 7);
        int[] chunkLengths = {5, 1, 8, 0, 9, 4};
        int tokens = Arrays.stream(chunkLengths).sum();
        SplittableRandom random = new SplittableRandom(42);
        int heads = shape.heads();
        int groupWidth = shape.groups() * shape.stateSize();
        float[] A = decays(random, heads);
        float[] D = uniform(random, heads, 1);
        float[] dt = timeSteps(random, tokens * heads);
        float[] x = uniform(random, tokens * shape.innerSize(), 1);
        float[] B = uniform(random, tokens * groupWidth, 1);
        float[] C = uniform(random, tokens * groupWidth, 1);
        float[] initial = uniform(random, shape.stateFloats(), 1);

        float[] expectedState = initial.clone();
        float[] expectedY = new float[tokens * shape.innerSize()];
        new ReferenceOps().ssdScan(shape, tokens, 4, x, dt, A, B, C, D, expectedState, expectedY);

        Ops cpu = new CpuOps(PARALLEL);
        float[] y = new float[expectedY.length];
        float[] state = initial.clone();
        int start = 0;
        for (int length : chunkLengths) {
            float[] chunkX = rows(x, start, length, shape.innerSize());
            float[] chunkDt = rows(dt, start, length, heads);
            float[] chunkB = rows(B, start, length, groupWidth);
            float[] chunkC = rows(C, start, length, groupWidth);
            float[] local = new float[shape.stateFloats()];
            float[] chunkY = new float[length * shape.innerSize()];
            if (length > 0) {
                cpu.ssdScan(shape, length, 4, chunkX, chunkDt, A, chunkB, chunkC, D, local, chunkY);
            }
            float[] cumulative = StatePassing.cumulativeLogDecay(length, heads, chunkDt, A);
            StatePassing.correct(PARALLEL, shape, length, cumulative, chunkC, state, chunkY);
            state = StatePassing.pass(shape, state, StatePassing.totalLogDecay(length, heads, cumulative), local);
            System.arraycopy(chunkY, 0, y, start * shape.innerSize(), chunkY.length);
            start += length;
        }
        assertClose(y, expectedY, 1e-4, "y");
        assertClose(state, expectedState, 1e-4, "final state");
    }

    private static float[] rows(float[] values, int first, int count, int width) {
        return Arrays.copyOfRange(values, first * width, (first + count) * width);
    }
}
