package dev.coil.engine.cpu;

import static dev.coil.engine.cpu.F32Assertions.assertClose;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.SsmShape;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** The chunked SSD scan and the decode step against the sequential double-precision recurrence. */
class SsdScanTest {

    private final Ops cpu = new CpuOps(new Parallel(3));
    private final Ops reference = new ReferenceOps();

    /** Random scan operands as a Mamba-2 layer produces them: A < 0, dt > 0. */
    private record Inputs(SsmShape shape, int tokens, float[] x, float[] dt, float[] A, float[] B, float[] C,
            float[] D, float[] state) {

        static Inputs random(SsmShape shape, int tokens, long seed) {
            SplittableRandom random = new SplittableRandom(seed);
            int heads = shape.heads();
            float[] A = new float[heads];
            float[] D = new float[heads];
            for (int h = 0; h < heads; h++) {
                A[h] = (float) -Math.exp(random.nextDouble(-1, 1));
                D[h] = (float) random.nextDouble(-1, 1);
            }
            float[] dt = new float[tokens * heads];
            for (int i = 0; i < dt.length; i++) {
                dt[i] = (float) Math.log1p(Math.exp(random.nextDouble(-3, 1)));
            }
            return new Inputs(shape, tokens, uniform(random, tokens * shape.innerSize(), 1), dt, A,
                    uniform(random, tokens * shape.groups() * shape.stateSize(), 1), 
                    uniform(random, tokens * shape.groups() * shape.stateSize(), 1), D,
                    uniform(random, shape.stateFloats(), 0.5));
        }

        /** Tokens [from, from + count) as operands of their own, starting from the given state. */
        Inputs slice(int from, int count, float[] startState) {
            int inner = shape.innerSize();
            int bc = shape.groups() * shape.stateSize();
            int heads = shape.heads();
            return new Inputs(shape, count, Arrays.copyOfRange(x, from * inner, (from + count) * inner),
                    Arrays.copyOfRange(dt, from * heads, (from + count) * heads), A,
                    Arrays.copyOfRange(B, from * bc, (from + count) * bc),
                    Arrays.copyOfRange(C, from * bc, (from + count) * bc), D, startState.clone());
        }
    }

    private record Result(float[] y, float[] state) {}

    private static Result scan(Ops ops, Inputs in, int chunkSize) {
        float[] state = in.state().clone();
        float[] y = new float[in.tokens() * in.shape().innerSize()];
        ops.ssdScan(in.shape(), in.tokens(), chunkSize, in.x(), in.dt(), in.A(), in.B(), in.C(), in.D(), state, y);
        return new Result(y, state);
    }

    @ParameterizedTest(name = "heads {0}, headDim {1}, groups {2}, state {3}, tokens {4}, chunk {5}")
    @CsvSource({
        "1, 1, 1, 1, 1, 4",
        "4, 8, 2, 8, 7, 4",
        "4, 8, 2, 8, 9, 4",
        "6, 5, 3, 7, 33, 8",
        "8, 16, 1, 16, 130, 64",
        "3, 17, 3, 9, 50, 50",
        "2, 24, 1, 32, 70, 1",
        "12, 64, 2, 128, 37, 256",
    })
    void chunkedScanMatchesTheRecurrence(int heads, int headDim, int groups, int stateSize, int tokens,
            int chunkSize) {
        Inputs in = Inputs.random(new SsmShape(heads, headDim, groups, stateSize), tokens, 17L * tokens + heads);

        Result expected = scan(reference, in, chunkSize);
        Result actual = scan(cpu, in, chunkSize);

        assertClose(actual.y(), expected.y(), "y");
        assertClose(actual.state(), expected.state(), "final state");
    }

    @Test
    void scanningInPiecesCarriesTheState() {
        SsmShape shape = new SsmShape(6, 12, 2, 10);
        int tokens = 40;
        Inputs in = Inputs.random(shape, tokens, 99);
        Result whole = scan(cpu, in, 8);

        float[] y = new float[tokens * shape.innerSize()];
        float[] state = in.state().clone();
        int from = 0;
        for (int count : new int[] {1, 2, 5, tokens - 8}) {
            Result piece = scan(cpu, in.slice(from, count, state), 8);
            System.arraycopy(piece.y(), 0, y, from * shape.innerSize(), piece.y().length);
            state = piece.state();
            from += count;
        }

        assertClose(y, whole.y(), "y of the pieces");
        assertClose(state, whole.state(), "state after the pieces");
    }

    @Test
    void repeatedStepsEqualTheScan() {
        SsmShape shape = new SsmShape(4, 9, 2, 19);
        int tokens = 21;
        Inputs in = Inputs.random(shape, tokens, 5);
        Result whole = scan(cpu, in, 4);

        float[] y = new float[tokens * shape.innerSize()];
        float[] state = in.state().clone();
        for (int t = 0; t < tokens; t++) {
            Inputs token = in.slice(t, 1, state);
            float[] out = new float[shape.innerSize()];
            cpu.ssmStep(shape, token.x(), token.dt(), token.A(), token.B(), token.C(), token.D(), state, out);
            System.arraycopy(out, 0, y, t * shape.innerSize(), out.length);
        }

        assertClose(y, whole.y(), "y of the steps");
        assertClose(state, whole.state(), "state after the steps");
    }

    @ParameterizedTest(name = "heads {0}, headDim {1}, groups {2}, state {3}")
    @CsvSource({"1, 1, 1, 1", "4, 8, 2, 8", "6, 5, 3, 7", "24, 64, 1, 128"})
    void stepMatchesTheReference(int heads, int headDim, int groups, int stateSize) {
        SsmShape shape = new SsmShape(heads, headDim, groups, stateSize);
        Inputs in = Inputs.random(shape, 1, heads * 31L + stateSize);
        float[] expectedState = in.state().clone();
        float[] expectedY = new float[shape.innerSize()];
        reference.ssmStep(shape, in.x(), in.dt(), in.A(), in.B(), in.C(), in.D(), expectedState, expectedY);
        float[] state = in.state().clone();
        float[] y = new float[shape.innerSize()];

        cpu.ssmStep(shape, in.x(), in.dt(), in.A(), in.B(), in.C(), in.D(), state, y);

        assertClose(y, expectedY, "y");
        assertClose(state, expectedState, "state");
    }

    @Test
    void aNonPositiveChunkSizeIsRejected() {
        Inputs in = Inputs.random(new SsmShape(1, 1, 1, 1), 3, 1);
        assertThatThrownBy(() -> scan(cpu, in, 0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("chunk size");
    }

    private static float[] uniform(SplittableRandom random, int count, double bound) {
        float[] values = new float[count];
        for (int i = 0; i < count; i++) {
            values[i] = (float) random.nextDouble(-bound, bound);
        }
        return values;
    }
}
