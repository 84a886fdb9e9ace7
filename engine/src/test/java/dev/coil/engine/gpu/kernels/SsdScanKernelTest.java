package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.kernels.SsdScanKernel.Inputs;
import dev.coil.engine.gpu.kernels.SsdScanKernel.Precision;
import dev.coil.engine.ops.SsmShape;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The SSD chunked scan against {@code ReferenceOps.ssdScan} (the sequential recurrence in double):
 * y and the final state on odd shapes and chunk sizes that do not divide the token count, inputs
 * read from strided rows, several sequences with scattered state slots, and a state carried across
 * two launches. Then the speed at the anchors' shape, printed, with its result spot-checked.
 */
@GpuTest
class SsdScanKernelTest {

    /** Split-tf32 products: f32-level error, relative to the element's scale. */
    private static final double F32_TOLERANCE = 1e-4;
    /** tf32 products (11-bit operands) accumulate errors near 1e-3 of the scale. */
    private static final double TF32_TOLERANCE = 1.5e-2;

    private final ReferenceOps reference = new ReferenceOps();

    private static double tolerance(Precision precision) {
        return precision == Precision.F32 ? F32_TOLERANCE : TF32_TOLERANCE;
    }

    /** One sequence's operands as a Mamba-2 layer produces them: A < 0, dt > 0 (softplus'd). */
    private record Problem(SsmShape shape, int tokens, float[] x, float[] dt, float[] A, float[] B, float[] C,
            float[] D, float[] state) {

        static Problem random(SsmShape shape, int tokens, long seed) {
            SplittableRandom random = new SplittableRandom(seed);
            int heads = shape.heads();
            float[] A = new float[heads];
            float[] D = new float[heads];
            for (int h = 0; h < heads; h++) {
                // Decays from barely any (A = -0.05) to strong (A = -4.5 with dt near 1).
                A[h] = (float) -Math.exp(random.nextDouble(-3, 1.5));
                D[h] = (float) random.nextDouble(-1, 1);
            }
            float[] dt = new float[tokens * heads];
            for (int i = 0; i < dt.length; i++) {
                dt[i] = (float) Math.log1p(Math.exp(random.nextDouble(-5, 0.5)));
            }
            int bc = tokens * shape.groups() * shape.stateSize();
            return new Problem(shape, tokens, uniform(random, tokens * shape.innerSize(), 1), dt, A,
                    uniform(random, bc, 1), uniform(random, bc, 1), D, uniform(random, shape.stateFloats(), 1));
        }

        /** Tokens [from, from + count) as a problem of their own, from {@code start}. */
        Problem slice(int from, int count, float[] start) {
            int inner = shape.innerSize();
            int bc = shape.groups() * shape.stateSize();
            int heads = shape.heads();
            return new Problem(shape, count, Arrays.copyOfRange(x, from * inner, (from + count) * inner),
                    Arrays.copyOfRange(dt, from * heads, (from + count) * heads), A,
                    Arrays.copyOfRange(B, from * bc, (from + count) * bc),
                    Arrays.copyOfRange(C, from * bc, (from + count) * bc), D, start.clone());
        }
    }

    private record Result(float[] y, float[] state) {}

    private Result expected(Problem problem) {
        float[] state = problem.state().clone();
        float[] y = new float[problem.tokens() * problem.shape().innerSize()];
        reference.ssdScan(problem.shape(), problem.tokens(), 64, problem.x(), problem.dt(), problem.A(), problem.B(),
                problem.C(), problem.D(), state, y);
        return new Result(y, state);
    }

    /** One launch over dense inputs, from a fresh state; poisoned output and workspace. */
    private static Result scan(DeviceScope scope, Precision precision, Problem problem, int chunk) {
        return scan(scope, new SsdScanKernel(GpuFixture.kernels()), precision, problem, chunk);
    }

    private static Result scan(DeviceScope scope, SsdScanKernel kernel, Precision precision, Problem problem,
            int chunk) {
        SsmShape shape = problem.shape();
        Inputs inputs = Inputs.contiguous(shape, scope.upload(problem.x()), scope.upload(problem.dt()),
                scope.upload(problem.B()), scope.upload(problem.C()));
        DeviceBuffer pool = scope.upload(problem.state());
        DeviceBuffer y = scope.poisoned((long) problem.tokens() * shape.innerSize());
        DeviceBuffer workspace = scope.poisoned(SsdScanKernel.workspaceBytes(shape, 1, problem.tokens(), chunk) / 4);
        kernel.launch(scope.stream(), precision, shape, 1, problem.tokens(), chunk, inputs, scope.upload(problem.A()),
                scope.upload(problem.D()), pool, null, y, workspace);
        return new Result(scope.download(y, problem.tokens() * shape.innerSize()),
                scope.download(pool, shape.stateFloats()));
    }

    /**
     * The kernels under test: F32 (warpgroup chunk states on Hopper: the default), F32mma (on
     * mma.sync), TF32 (two heads a block, warpgroup chunk states and outputs on Hopper: the default),
     * TF32mma (the same on mma.sync) and TF32x1 (one head a block, mma.sync).
     */
    private static SsdScanKernel kernel(String variant) {
        return new SsdScanKernel(GpuFixture.kernels(), variant.endsWith("x1") ? 1 : 2, !variant.endsWith("mma"));
    }

    private static Precision precision(String variant) {
        return variant.startsWith("F32") ? Precision.F32 : Precision.TF32;
    }

    @ParameterizedTest(name = "{6}: heads {0}, headDim {1}, groups {2}, state {3}, tokens {4}, chunk {5}")
    @CsvSource({
        "1, 1, 1, 1, 1, 1, F32",
        "2, 5, 1, 7, 13, 4, F32",
        "4, 37, 2, 16, 100, 33, F32",
        "3, 70, 3, 132, 517, 64, F32",
        "6, 64, 2, 128, 300, 256, F32",
        "8, 64, 1, 128, 700, 256, F32",
        "2, 8, 1, 8, 9, 1, F32",
        "2, 16, 2, 64, 459, 200, F32",
        "5, 72, 1, 132, 300, 64, F32",
        "6, 64, 2, 128, 300, 256, F32mma",
        "3, 70, 3, 132, 517, 64, F32mma",
        "4, 64, 1, 128, 700, 256, TF32",
        "3, 37, 1, 20, 259, 128, TF32",
        "2, 130, 2, 250, 97, 17, TF32",
        "6, 64, 2, 128, 517, 256, TF32",
        "1, 1, 1, 1, 1, 1, TF32",
        "5, 70, 1, 132, 300, 64, TF32",
        "5, 72, 1, 132, 300, 64, TF32",
        "3, 64, 1, 8, 37, 16, TF32",
        "4, 64, 1, 128, 700, 256, TF32x1",
        "3, 37, 1, 20, 259, 128, TF32x1",
        "6, 70, 2, 132, 517, 100, TF32x1",
        "3, 128, 1, 64, 333, 256, TF32",
        "4, 68, 2, 36, 129, 48, TF32",
        "4, 64, 2, 128, 300, 200, TF32",
        "4, 64, 1, 128, 700, 256, TF32mma",
        "5, 70, 1, 132, 300, 64, TF32mma",
    })
    void scanMatchesTheReference(int heads, int headDim, int groups, int stateSize, int tokens, int chunk,
            String variant) {
        Precision precision = precision(variant);
        Problem problem = Problem.random(new SsmShape(heads, headDim, groups, stateSize), tokens,
                31L * tokens + 7L * heads + chunk);
        Result expected = expected(problem);

        try (DeviceScope scope = GpuFixture.scope()) {
            Result actual = scan(scope, kernel(variant), precision, problem, chunk);
            String what = "ssd scan " + variant + " heads " + heads + " headDim " + headDim + " groups " + groups
                    + " state " + stateSize + " tokens " + tokens + " chunk " + chunk;
            Parity.assertClose(what + " y", actual.y(), expected.y(), tolerance(precision));
            Parity.assertClose(what + " final state", actual.state(), expected.state(), tolerance(precision));
        }
    }

    @ParameterizedTest
    @EnumSource(Precision.class)
    void stridedSequencesWithScatteredSlotsMatchTheReference(Precision precision) {
        SsmShape shape = new SsmShape(4, 24, 2, 20);
        int sequences = 3;
        int tokens = 77;
        int chunk = 32;
        int inner = shape.innerSize();
        int groupWidth = shape.groups() * shape.stateSize();
        int[] slots = {2, 0, 3};
        int slotCount = 4;
        // One row per token as the conv output lays them out: x | B | C | padding; dt with padding too.
        int rowStride = inner + 2 * groupWidth + 3;
        int dtStride = shape.heads() + 1;
        SplittableRandom random = new SplittableRandom(11);
        float[] rows = uniform(random, sequences * tokens * rowStride, 1);
        float[] dtRows = new float[sequences * tokens * dtStride];
        for (int i = 0; i < dtRows.length; i++) {
            dtRows[i] = (float) random.nextDouble(0.001, 0.8);
        }
        float[] pool = uniform(random, slotCount * shape.stateFloats(), 1);
        Problem common = Problem.random(shape, 1, 12);

        float[] expectedY = new float[sequences * tokens * inner];
        float[] expectedPool = pool.clone();
        for (int b = 0; b < sequences; b++) {
            float[] x = new float[tokens * inner];
            float[] B = new float[tokens * groupWidth];
            float[] C = new float[tokens * groupWidth];
            float[] dt = new float[tokens * shape.heads()];
            for (int t = 0; t < tokens; t++) {
                int row = (b * tokens + t) * rowStride;
                System.arraycopy(rows, row, x, t * inner, inner);
                System.arraycopy(rows, row + inner, B, t * groupWidth, groupWidth);
                System.arraycopy(rows, row + inner + groupWidth, C, t * groupWidth, groupWidth);
                System.arraycopy(dtRows, (b * tokens + t) * dtStride, dt, t * shape.heads(), shape.heads());
            }
            int base = slots[b] * shape.stateFloats();
            float[] state = Arrays.copyOfRange(expectedPool, base, base + shape.stateFloats());
            float[] y = new float[tokens * inner];
            reference.ssdScan(shape, tokens, chunk, x, dt, common.A(), B, C, common.D(), state, y);
            System.arraycopy(state, 0, expectedPool, base, state.length);
            System.arraycopy(y, 0, expectedY, b * tokens * inner, y.length);
        }

        try (DeviceScope scope = GpuFixture.scope()) {
            SsdScanKernel kernel = new SsdScanKernel(GpuFixture.kernels());
            DeviceBuffer deviceRows = scope.upload(rows);
            long total = deviceRows.floats();
            Inputs inputs = new Inputs(deviceRows, rowStride, scope.upload(dtRows), dtStride,
                    deviceRows.floatSlice(inner, total - inner),
                    deviceRows.floatSlice(inner + groupWidth, total - inner - groupWidth), rowStride);
            DeviceBuffer devicePool = scope.upload(pool);
            DeviceBuffer y = scope.poisoned(expectedY.length);
            DeviceBuffer workspace = scope.poisoned(SsdScanKernel.workspaceBytes(shape, sequences, tokens, chunk) / 4);
            kernel.launch(scope.stream(), precision, shape, sequences, tokens, chunk, inputs, scope.upload(common.A()),
                    scope.upload(common.D()), devicePool, scope.upload(slots), y, workspace);

            String what = "ssd scan " + precision + " strided, 3 sequences in slots 2, 0, 3";
            Parity.assertClose(what + " y", scope.download(y, expectedY.length), expectedY, tolerance(precision));
            float[] actualPool = scope.download(devicePool, pool.length);
            Parity.assertClose(what + " pool", actualPool, expectedPool, tolerance(precision));
            int untouched = shape.stateFloats();
            Parity.assertExact("ssd scan: the slot no sequence uses",
                    Arrays.copyOfRange(actualPool, untouched, 2 * untouched),
                    Arrays.copyOfRange(pool, untouched, 2 * untouched));
        }
    }

    /**
     * Prompt chunks of different lengths packed one after another, scanned in one launch (the
     * shorter ones with empty scan chunks past their end), equal one launch each bit for bit: y and
     * the state left in each slot, for every kernel variant, with inputs in strided rows (mma.sync
     * outputs) or dense (the warpgroup outputs where the variant has them). The last three chunks
     * again as a packing that starts at a later row, as a step scans a group of its chunks.
     */
    @ParameterizedTest(name = "{0}, strided rows {1}")
    @CsvSource({"F32,true", "F32,false", "F32mma,false", "TF32,true", "TF32,false", "TF32mma,false", "TF32x1,false"})
    void packedChunksOfDifferentLengthsEqualOneLaunchEach(String variant, boolean strided) {
        SsmShape shape = new SsmShape(4, 64, 2, 32);
        int chunk = 64;
        int[] lengths = {5, 70, 1, 64, 130};
        int[] slots = {4, 0, 2, 5, 1};
        int[] starts = Packing.starts(lengths);
        int rows = starts[lengths.length];
        int inner = shape.innerSize();
        int groupWidth = shape.groups() * shape.stateSize();
        int rowStride = inner + 2 * groupWidth + (strided ? 3 : 0);
        int dtStride = shape.heads() + (strided ? 1 : 0);
        SplittableRandom random = new SplittableRandom(23);
        float[] packedRows = uniform(random, rows * rowStride, 1);
        float[] dtRows = new float[rows * dtStride];
        for (int i = 0; i < dtRows.length; i++) {
            dtRows[i] = (float) random.nextDouble(0.001, 0.8);
        }
        float[] pool = uniform(random, 6 * shape.stateFloats(), 1);
        Problem common = Problem.random(shape, 1, 29);
        SsdScanKernel kernel = kernel(variant);
        Precision precision = precision(variant);

        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer A = scope.upload(common.A());
            DeviceBuffer D = scope.upload(common.D());
            DeviceBuffer deviceRows = scope.upload(packedRows);
            DeviceBuffer deviceDt = scope.upload(dtRows);
            long total = deviceRows.floats();
            Inputs inputs = new Inputs(deviceRows, rowStride, deviceDt, dtStride,
                    deviceRows.floatSlice(inner, total - inner),
                    deviceRows.floatSlice(inner + groupWidth, total - inner - groupWidth), rowStride);

            // One launch a chunk, each on its own rows.
            DeviceBuffer expectedPool = scope.upload(pool);
            DeviceBuffer expectedY = scope.poisoned((long) rows * inner);
            for (int s = 0; s < lengths.length; s++) {
                long rowFloats = (long) lengths[s] * rowStride;
                DeviceBuffer own = deviceRows.floatSlice((long) starts[s] * rowStride, rowFloats);
                Inputs ownInputs = new Inputs(own, rowStride,
                        deviceDt.floatSlice((long) starts[s] * dtStride, (long) lengths[s] * dtStride), dtStride,
                        own.floatSlice(inner, rowFloats - inner),
                        own.floatSlice(inner + groupWidth, rowFloats - inner - groupWidth), rowStride);
                DeviceBuffer workspace = scope.poisoned(
                        SsdScanKernel.workspaceBytes(shape, 1, lengths[s], chunk) / 4);
                kernel.launch(scope.stream(), precision, shape, 1, lengths[s], chunk, ownInputs, A, D, expectedPool,
                        scope.upload(new int[] {slots[s]}), expectedY.floatSlice((long) starts[s] * inner,
                                (long) lengths[s] * inner), workspace);
            }
            float[] oneEach = scope.download(expectedY, rows * inner);
            float[] oneEachPool = scope.download(expectedPool, pool.length);

            // All chunks in one launch.
            DeviceBuffer devicePool = scope.upload(pool);
            DeviceBuffer y = scope.poisoned((long) rows * inner);
            PackedChunks all = new PackedChunks(0, lengths, scope.upload(starts), scope.upload(slots), null, null);
            DeviceBuffer workspace = scope.poisoned(
                    SsdScanKernel.workspaceBytes(shape, lengths.length, all.longest(), chunk) / 4);
            kernel.launchPacked(scope.stream(), precision, shape, chunk, inputs, A, D, devicePool, all, y, workspace);
            String what = "ssd scan " + variant + (strided ? " strided" : " dense") + ", chunks of 5, 70, 1, 64, 130";
            Parity.assertExact(what + " packed: y against one launch each", scope.download(y, rows * inner),
                    oneEach);
            Parity.assertExact(what + " packed: states against one launch each",
                    scope.download(devicePool, pool.length), oneEachPool);

            // The last three from a later row (starts still counted from row 0).
            DeviceBuffer laterPool = scope.upload(pool);
            DeviceBuffer laterY = scope.poisoned((long) rows * inner);
            DeviceBuffer deviceStarts = scope.upload(starts);
            DeviceBuffer deviceSlots = scope.upload(slots);
            PackedChunks later = new PackedChunks(starts[2], Arrays.copyOfRange(lengths, 2, 5),
                    deviceStarts.floatSlice(2, 4), deviceSlots.floatSlice(2, 3), null, null);
            DeviceBuffer laterWorkspace = scope.poisoned(
                    SsdScanKernel.workspaceBytes(shape, 3, later.longest(), chunk) / 4);
            // The first two chunks' states as the full launch left them, so the whole pool compares.
            kernel.launchPacked(scope.stream(), precision, shape, chunk, inputs, A, D, laterPool,
                    new PackedChunks(0, Arrays.copyOfRange(lengths, 0, 2), deviceStarts.floatSlice(0, 3),
                            deviceSlots.floatSlice(0, 2), null, null), laterY, laterWorkspace);
            kernel.launchPacked(scope.stream(), precision, shape, chunk, inputs, A, D, laterPool, later, laterY,
                    laterWorkspace);
            Parity.assertExact(what + ", packed in two groups: y", scope.download(laterY, rows * inner), oneEach);
            Parity.assertExact(what + ", packed in two groups: states", scope.download(laterPool, pool.length),
                    oneEachPool);
        }
    }

    @ParameterizedTest
    @EnumSource(Precision.class)
    void stateCarriedAcrossTwoLaunchesEqualsOneLaunch(Precision precision) {
        SsmShape shape = new SsmShape(3, 64, 1, 64);
        int first = 300;
        int second = 217;
        int chunk = 128;
        Problem whole = Problem.random(shape, first + second, 5);
        Result expected = expected(whole);

        try (DeviceScope scope = GpuFixture.scope()) {
            Result one = scan(scope, precision, whole, chunk);
            Result head = scan(scope, precision, whole.slice(0, first, whole.state()), chunk);
            Result tail = scan(scope, precision, whole.slice(first, second, head.state()), chunk);
            float[] y = Arrays.copyOf(head.y(), one.y().length);
            System.arraycopy(tail.y(), 0, y, head.y().length, tail.y().length);

            String what = "ssd scan " + precision + " " + first + " + " + second + " tokens";
            Parity.assertClose(what + " y, two launches against one", y, one.y(), tolerance(precision));
            Parity.assertClose(what + " state, two launches against one", tail.state(), one.state(),
                    tolerance(precision));
            Parity.assertClose(what + " y, two launches", y, expected.y(), tolerance(precision));
            Parity.assertClose(what + " state, two launches", tail.state(), expected.state(), tolerance(precision));
        }
    }

    @Test
    void badArgumentsAreRefusedWithTheirNames() {
        SsmShape shape = new SsmShape(2, 4, 1, 4);
        assertThatThrownBy(() -> SsdScanKernel.workspaceBytes(shape, 1, 10, 257))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("chunkSize");
        assertThatThrownBy(() -> SsdScanKernel.workspaceBytes(shape, 1, 10, 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("chunkSize");
        try (DeviceScope scope = GpuFixture.scope()) {
            SsdScanKernel kernel = new SsdScanKernel(GpuFixture.kernels());
            DeviceBuffer small = scope.poisoned(8);
            DeviceBuffer workspace = scope.poisoned(SsdScanKernel.workspaceBytes(shape, 1, 10, 4) / 4);
            Inputs inputs = Inputs.contiguous(shape, small, small, small, small);
            assertThatThrownBy(() -> kernel.launch(scope.stream(), Precision.F32, shape, 1, 10, 4, inputs, small, small,
                    small, null, small, workspace)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("x holds 8");
        }
    }

    /**
     * The anchors' shape (heads 64, head_dim 64, d_state 128, one group, chunk 256): 16k tokens as one
     * sequence and as 16 sequences of 1k. Prints the median time of a whole launch and of each of
     * its four kernels; asserts only that head 0 of the last sequence matches the recurrence.
     */
    @Test
    void speedAtTheAnchorShape() {
        SsmShape shape = new SsmShape(64, 64, 1, 128);
        int total = 16384;
        int chunk = 256;
        SplittableRandom random = new SplittableRandom(2024);
        int inner = shape.innerSize();
        float[] x = uniform(random, total * inner, 1);
        float[] B = uniform(random, total * shape.stateSize(), 1);
        float[] C = uniform(random, total * shape.stateSize(), 1);
        float[] dt = new float[total * shape.heads()];
        for (int i = 0; i < dt.length; i++) {
            dt[i] = (float) Math.log1p(Math.exp(random.nextDouble(-5, 0.5)));
        }
        float[] A = new float[shape.heads()];
        float[] D = new float[shape.heads()];
        for (int h = 0; h < shape.heads(); h++) {
            A[h] = (float) -Math.exp(random.nextDouble(-3, 1.5));
            D[h] = (float) random.nextDouble(-1, 1);
        }
        int maxSequences = 16;
        float[] pool = uniform(random, maxSequences * shape.stateFloats(), 1);

        CudaDevice device = GpuFixture.device();
        try (DeviceScope scope = GpuFixture.scope()) {
            Inputs inputs = Inputs.contiguous(shape, scope.upload(x), scope.upload(dt), scope.upload(B),
                    scope.upload(C));
            DeviceBuffer deviceA = scope.upload(A);
            DeviceBuffer deviceD = scope.upload(D);
            DeviceBuffer y = scope.poisoned((long) total * inner);
            DeviceBuffer devicePool = scope.upload(pool);
            DeviceBuffer workspace = scope.keep(device.allocate(SsdScanKernel.workspaceBytes(shape, 1, total, chunk)));
            // Written before each timed repetition, to push the inputs out of L2 (see time).
            DeviceBuffer flush = scope.keep(device.allocate(256L << 20));
            for (int sequences : new int[] {1, maxSequences}) {
                int tokens = total / sequences;
                for (String variant : new String[] {"TF32", "TF32mma", "TF32x1", "F32", "F32mma"}) {
                    SsdScanKernel kernel = kernel(variant);
                    Precision precision = precision(variant);
                    devicePool.copyFrom(pool);
                    y.fill(DeviceScope.POISON);
                    kernel.launch(scope.stream(), precision, shape, sequences, tokens, chunk, inputs, deviceA, deviceD,
                            devicePool, null, y, workspace);
                    float[] result = scope.download(y, total * inner);
                    float[] finalPool = scope.download(devicePool, sequences * shape.stateFloats());
                    assertLastSequenceHeadZero(shape, sequences, tokens, x, dt, A, B, C, D, pool, result, finalPool,
                            variant);
                    assertThat(unwritten(result)).as("y elements still NaN (never written)").isZero();

                    float[] times = time(device, scope, flush, marks -> kernel.launch(scope.stream(), precision, shape,
                            sequences, tokens, chunk, inputs, deviceA, deviceD, devicePool, null, y, workspace, marks));
                    System.out.printf("[timing] ssd scan %s, %d × %d tokens, heads 64, head_dim 64, d_state 128, "
                            + "chunk 256: %.3f ms = %.1f M tokens/s (gram %.3f, chunk states %.3f, passing %.3f, "
                            + "outputs %.3f ms)%n", variant, sequences, tokens, times[0], total / (times[0] * 1e3),
                            times[1], times[2], times[3], times[4]);
                }
            }
        }
    }

    /** y and the final state of head 0 of the last sequence against the recurrence in double. */
    private static void assertLastSequenceHeadZero(SsmShape shape, int sequences, int tokens, float[] x, float[] dt,
            float[] A, float[] B, float[] C, float[] D, float[] pool, float[] y, float[] finalPool,
            String variant) {
        Precision precision = precision(variant);
        int headDim = shape.headDim();
        int stateSize = shape.stateSize();
        int heads = shape.heads();
        int inner = shape.innerSize();
        int sequence = sequences - 1;
        double[] state = new double[headDim * stateSize];
        for (int i = 0; i < state.length; i++) {
            state[i] = pool[sequence * shape.stateFloats() + i];
        }
        float[] expected = new float[tokens * headDim];
        float[] actual = new float[tokens * headDim];
        for (int t = 0; t < tokens; t++) {
            int row = sequence * tokens + t;
            double step = dt[row * heads];
            double decay = Math.exp(step * A[0]);
            for (int p = 0; p < headDim; p++) {
                double input = step * x[row * inner + p];
                double sum = 0;
                for (int n = 0; n < stateSize; n++) {
                    int i = p * stateSize + n;
                    state[i] = decay * state[i] + input * B[row * stateSize + n];
                    sum += state[i] * C[row * stateSize + n];
                }
                expected[t * headDim + p] = (float) (sum + (double) D[0] * x[row * inner + p]);
                actual[t * headDim + p] = y[row * inner + p];
            }
        }
        float[] expectedState = new float[state.length];
        for (int i = 0; i < state.length; i++) {
            expectedState[i] = (float) state[i];
        }
        String what = "ssd scan " + variant + " at the anchor shape, " + sequences + " sequences, head 0 of the last";
        Parity.assertClose(what + " y", actual, expected, tolerance(precision));
        Parity.assertClose(what + " final state",
                Arrays.copyOfRange(finalPool, sequence * shape.stateFloats(), sequence * shape.stateFloats()
                        + state.length), expectedState, tolerance(precision));
    }

    private interface Marked {
        void run(CudaEvent[] marks);
    }

    /**
     * Medians in ms of the whole launch and of each of its parts, after warm-up, timed as Triton's
     * {@code do_bench} times the anchor: repetitions queued back to back with their own events and one
     * wait at the end (so the GPU never idles for the host's launches inside a measured span), each
     * after writing all of {@code flush} (256 MiB), which pushes the inputs out of L2.
     */
    private static float[] time(CudaDevice device, DeviceScope scope, DeviceBuffer flush, Marked work) {
        int warmup = 3;
        int repeats = 20;
        // Two passes: the whole launch between two events (kernels may overlap), then each kernel
        // between events of its own (which keep the kernels apart).
        CudaEvent[][] wholes = events(device, scope, repeats, 2);
        CudaEvent[][] marks = events(device, scope, repeats, 5);
        for (int i = 0; i < warmup; i++) {
            flush.fillAsync(0, scope.stream());
            work.run(marks[0]);
        }
        marks[0][4].synchronize();
        for (int r = 0; r < repeats; r++) {
            flush.fillAsync(0, scope.stream());
            wholes[r][0].record(scope.stream());
            work.run(null);
            wholes[r][1].record(scope.stream());
        }
        for (int r = 0; r < repeats; r++) {
            flush.fillAsync(0, scope.stream());
            work.run(marks[r]);
        }
        marks[repeats - 1][4].synchronize();
        float[][] samples = new float[5][repeats];
        for (int r = 0; r < repeats; r++) {
            samples[0][r] = wholes[r][1].millisSince(wholes[r][0]);
            for (int k = 1; k < 5; k++) {
                samples[k][r] = marks[r][k].millisSince(marks[r][k - 1]);
            }
        }
        float[] medians = new float[5];
        for (int k = 0; k < 5; k++) {
            Arrays.sort(samples[k]);
            medians[k] = samples[k][repeats / 2];
        }
        return medians;
    }

    private static CudaEvent[][] events(CudaDevice device, DeviceScope scope, int rows, int columns) {
        CudaEvent[][] events = new CudaEvent[rows][columns];
        for (CudaEvent[] row : events) {
            for (int i = 0; i < columns; i++) {
                row[i] = scope.keep(device.newEvent());
            }
        }
        return events;
    }

    private static long unwritten(float[] values) {
        long count = 0;
        for (float value : values) {
            if (Float.isNaN(value)) {
                count++;
            }
        }
        return count;
    }

    private static float[] uniform(SplittableRandom random, int n, double scale) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) random.nextDouble(-scale, scale);
        }
        return values;
    }
}
