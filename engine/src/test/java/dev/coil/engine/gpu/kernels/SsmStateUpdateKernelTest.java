package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.TestMatrices;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.SsmShape;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The batched selective state update against {@code ReferenceOps.ssmStep} run per sequence: y and
 * every state slot after three decode steps, with inputs read from strided rows (as the conv
 * output's x | B | C columns are), slots scattered in a larger pool, and dt either final or raw
 * (bias and softplus folded into the kernel).
 */
@GpuTest
class SsmStateUpdateKernelTest {

    private static final double TOLERANCE = 5e-6;

    private final ReferenceOps reference = new ReferenceOps();

    @ParameterizedTest(name = "heads {0}, headDim {1}, groups {2}, state {3}, raw dt {4}, {5} rows a warp")
    @CsvSource({
        "1,1,1,1,false,1",
        "4,5,2,16,false,1",
        "6,3,3,7,true,1",
        "8,64,1,128,false,1",
        "8,64,2,128,true,1",
        "3,37,1,132,false,1",
        "24,64,8,64,true,1",
        "4,5,2,16,false,4",
        "6,3,3,7,true,4",
        "8,64,2,128,true,4",
        "3,37,1,132,false,4",
        "3,37,1,200,true,4",
        "24,64,8,64,true,4",
        "2,9,1,300,false,4",
        "2,9,1,301,true,4",
        "8,64,1,128,false,4",
        "4,64,1,256,true,4"
    })
    void decodeStepsMatchTheReference(int heads, int headDim, int groups, int stateSize, boolean rawDt,
            int rowsPerWarp) {
        SsmShape shape = new SsmShape(heads, headDim, groups, stateSize);
        Random random = new Random(heads * 101L + headDim * 7L + groups + stateSize + (rawDt ? 1 : 0));
        int inner = shape.innerSize();
        int groupWidth = groups * stateSize;
        int[] slots = {3, 0, 4};
        int batch = slots.length;
        int slotCount = 5;
        int stateFloats = shape.stateFloats();
        // One row per sequence as the conv output lays them out: x | B | C | padding.
        int rowStride = inner + 2 * groupWidth + 3;
        int dtStride = heads + 2;

        float[] A = new float[heads];
        for (int h = 0; h < heads; h++) {
            A[h] = (float) -Math.exp(random.nextDouble() * 2 - 1);
        }
        float[] D = Parity.uniform(random, heads, -1, 1);
        float[] dtBias = Parity.uniform(random, heads, -1, 1);
        float[] pool = Parity.uniform(random, slotCount * stateFloats, -1, 1);
        float[] expectedPool = pool.clone();

        try (DeviceScope scope = GpuFixture.scope()) {
            SsmStateUpdateKernel kernel = new SsmStateUpdateKernel(GpuFixture.kernels());
            DeviceBuffer devicePool = scope.upload(pool);
            DeviceBuffer deviceSlots = scope.upload(slots);
            DeviceBuffer deviceA = scope.upload(A);
            DeviceBuffer deviceD = scope.upload(D);
            DeviceBuffer deviceBias = scope.upload(dtBias);
            for (int step = 0; step < 3; step++) {
                float[] rows = Parity.uniform(random, batch * rowStride, -2, 2);
                float[] dtRows = rawDt ? Parity.uniform(random, batch * dtStride, -4, 1)
                        : Parity.uniform(random, batch * dtStride, 0.001, 0.3);
                float[] expected = new float[batch * inner];
                for (int b = 0; b < batch; b++) {
                    int row = b * rowStride;
                    float[] x = Arrays.copyOfRange(rows, row, row + inner);
                    float[] B = Arrays.copyOfRange(rows, row + inner, row + inner + groupWidth);
                    float[] C = Arrays.copyOfRange(rows, row + inner + groupWidth, row + inner + 2 * groupWidth);
                    float[] dt = new float[heads];
                    for (int h = 0; h < heads; h++) {
                        float value = dtRows[b * dtStride + h];
                        dt[h] = rawDt ? softplus(value + dtBias[h]) : value;
                    }
                    int base = slots[b] * stateFloats;
                    float[] state = Arrays.copyOfRange(expectedPool, base, base + stateFloats);
                    float[] y = new float[inner];
                    reference.ssmStep(shape, x, dt, A, B, C, D, state, y);
                    System.arraycopy(state, 0, expectedPool, base, stateFloats);
                    System.arraycopy(y, 0, expected, b * inner, inner);
                }

                DeviceBuffer deviceRows = scope.upload(rows);
                DeviceBuffer y = scope.poisoned(expected.length);
                SsmStateUpdateKernel.Step dt = new SsmStateUpdateKernel.Step(scope.upload(dtRows), dtStride,
                        rawDt ? deviceBias : null, rawDt);
                kernel.launch(scope.stream(), rowsPerWarp, shape, batch, deviceRows, rowStride, dt, deviceA,
                        deviceRows.floatSlice(inner, deviceRows.floats() - inner),
                        deviceRows.floatSlice(inner + groupWidth, deviceRows.floats() - inner - groupWidth), rowStride,
                        deviceD, devicePool, deviceSlots, y, null, 0);
                String what = "ssm_state_update heads " + heads + " headDim " + headDim + " groups " + groups
                        + " state " + stateSize + (rawDt ? " raw dt" : "") + ", " + rowsPerWarp + " rows a warp, step "
                        + step;
                Parity.assertClose(what + " y", scope.download(y, expected.length), expected, TOLERANCE);
                Parity.assertClose(what + " states", scope.download(devicePool, pool.length), expectedPool, TOLERANCE);
                assertUntouchedSlotsUnchanged(scope.download(devicePool, pool.length), pool, slots, stateFloats);
            }
        }
    }

    @ParameterizedTest(name = "rows {0}, norm group {1}")
    @CsvSource({"1,1536", "2,768"})
    void gateInsideTheUpdateGivesOutProjectionTheSameGatedNorm(int batch, int normGroup) {
        SsmShape shape = new SsmShape(24, 64, 1, 128);
        Random random = new Random(batch * 13L + normGroup);
        int inner = shape.innerSize();
        int groupWidth = shape.groups() * shape.stateSize();
        // A decode step's in_proj row: z | x | B | C | dt.
        int width = 2 * inner + 2 * groupWidth + shape.heads();
        int[] slots = batch == 1 ? new int[] {1} : new int[] {2, 0};
        float[] A = new float[shape.heads()];
        for (int h = 0; h < A.length; h++) {
            A[h] = (float) -Math.exp(random.nextDouble() * 2 - 1);
        }
        float[] pool = Parity.uniform(random, 3 * shape.stateFloats(), -1, 1);
        float[] rows = Parity.uniform(random, batch * width, -2, 2);
        Matrix outProjection = TestMatrices.of(Parity.uniform(random, 96 * inner, -1, 1), 96, inner, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            SsmStateUpdateKernel kernel = new SsmStateUpdateKernel(GpuFixture.kernels());
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels());
            DeviceBuffer projected = scope.upload(rows);
            DeviceBuffer deviceA = scope.upload(A);
            DeviceBuffer deviceD = scope.upload(Parity.uniform(random, shape.heads(), -1, 1));
            DeviceBuffer bias = scope.upload(Parity.uniform(random, shape.heads(), -1, 1));
            DeviceBuffer deviceSlots = scope.upload(slots);
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), outProjection));
            GemvKernel.Norm norm = new GemvKernel.Norm(scope.upload(Parity.uniform(random, inner, 0.5, 1.5)),
                    normGroup, 1e-5f);
            SsmStateUpdateKernel.Step dt = new SsmStateUpdateKernel.Step(
                    projected.floatSlice(width - shape.heads(), projected.floats() - width + shape.heads()), width,
                    bias, true);
            DeviceBuffer x = projected.floatSlice(inner, projected.floats() - inner);
            DeviceBuffer B = projected.floatSlice(2 * inner, projected.floats() - 2 * inner);
            DeviceBuffer C = projected.floatSlice(2 * inner + groupWidth, projected.floats() - 2 * inner - groupWidth);

            DeviceBuffer separatePool = scope.upload(pool);
            DeviceBuffer y = scope.poisoned((long) batch * inner);
            kernel.launch(scope.stream(), shape, batch, x, width, dt, deviceA, B, C, width, deviceD, separatePool,
                    deviceSlots, y);
            DeviceBuffer separate = scope.poisoned(batch * 96L);
            gemv.projectGatedNorm(scope.stream(), y, inner, projected, width, norm, batch,
                    new GemvKernel.Product(weights, separate));

            DeviceBuffer gatedPool = scope.upload(pool);
            DeviceBuffer gated = scope.poisoned((long) batch * inner);
            kernel.launch(scope.stream(), shape, batch, x, width, dt, deviceA, B, C, width, deviceD, gatedPool,
                    deviceSlots, gated, projected, width);
            DeviceBuffer fused = scope.poisoned(batch * 96L);
            gemv.projectGatedNorm(scope.stream(), gated, inner, null, 0, norm, batch,
                    new GemvKernel.Product(weights, fused));

            Parity.assertExact("out_proj of the gated norm, y gated by the update vs by the norm",
                    scope.download(fused, batch * 96), scope.download(separate, batch * 96));
            Parity.assertExact("states after the gated update", scope.download(gatedPool, pool.length),
                    scope.download(separatePool, pool.length));
        }
    }

    /**
     * A warp's rows of state (1 or 4) change only how the work is split: every row is summed by
     * one warp in the same order, so y, y gated by z, and the states have the same bits in each
     * variant, on a batch large enough to take several rows a warp by default.
     */
    @ParameterizedTest(name = "heads {0}, headDim {1}, state {2}, batch {3}")
    @CsvSource({"24,64,128,9", "4,64,256,9", "3,37,132,5", "2,9,301,4"})
    void everyRowsPerWarpGivesTheSameBits(int heads, int headDim, int stateSize, int batch) {
        SsmShape shape = new SsmShape(heads, headDim, 1, stateSize);
        Random random = new Random(heads * 7L + headDim + stateSize * 3L + batch);
        int inner = shape.innerSize();
        int width = inner + 2 * stateSize + heads + 1;
        int slotCount = batch + 3;
        int[] slots = new int[batch];
        Arrays.setAll(slots, b -> (b * 5 + 2) % slotCount);
        float[] A = new float[heads];
        for (int h = 0; h < heads; h++) {
            A[h] = (float) -Math.exp(random.nextDouble() * 2 - 1);
        }
        float[] pool = Parity.uniform(random, slotCount * shape.stateFloats(), -1, 1);
        float[] rows = Parity.uniform(random, batch * width, -2, 2);
        float[] z = Parity.uniform(random, batch * inner, -3, 3);
        try (DeviceScope scope = GpuFixture.scope()) {
            SsmStateUpdateKernel kernel = new SsmStateUpdateKernel(GpuFixture.kernels());
            DeviceBuffer projected = scope.upload(rows);
            DeviceBuffer deviceZ = scope.upload(z);
            DeviceBuffer deviceA = scope.upload(A);
            DeviceBuffer deviceD = scope.upload(Parity.uniform(random, heads, -1, 1));
            DeviceBuffer bias = scope.upload(Parity.uniform(random, heads, -1, 1));
            DeviceBuffer deviceSlots = scope.upload(slots);
            SsmStateUpdateKernel.Step dt = new SsmStateUpdateKernel.Step(
                    projected.floatSlice(width - heads - 1, projected.floats() - width + heads + 1), width, bias, true);
            DeviceBuffer B = projected.floatSlice(inner, projected.floats() - inner);
            DeviceBuffer C = projected.floatSlice(inner + stateSize, projected.floats() - inner - stateSize);
            float[][] expected = null;
            for (int rowsPerWarp : SsmStateUpdateKernel.ROWS_PER_WARP) {
                DeviceBuffer devicePool = scope.upload(pool);
                DeviceBuffer y = scope.poisoned((long) batch * inner);
                DeviceBuffer gated = scope.poisoned((long) batch * inner);
                kernel.launch(scope.stream(), rowsPerWarp, shape, batch, projected, width, dt, deviceA, B, C, width,
                        deviceD, devicePool, deviceSlots, y, null, 0);
                kernel.launch(scope.stream(), rowsPerWarp, shape, batch, projected, width, dt, deviceA, B, C, width,
                        deviceD, devicePool, deviceSlots, gated, deviceZ, inner);
                float[][] actual = {scope.download(y, batch * inner), scope.download(gated, batch * inner),
                    scope.download(devicePool, pool.length)};
                if (expected == null) {
                    expected = actual;
                    continue;
                }
                String what = rowsPerWarp + " rows a warp against one, ";
                Parity.assertExact(what + "y", actual[0], expected[0]);
                Parity.assertExact(what + "y gated", actual[1], expected[1]);
                Parity.assertExact(what + "states after two updates", actual[2], expected[2]);
            }
        }
    }

    /** torch's softplus as Mamba2Mixer applies it: linear above 20. */
    private static float softplus(float value) {
        return value > 20f ? value : (float) Math.log1p(Math.exp(value));
    }

    private static void assertUntouchedSlotsUnchanged(float[] actual, float[] initial, int[] slots, int stateFloats) {
        for (int slot = 0; slot * stateFloats < initial.length; slot++) {
            int s = slot;
            if (Arrays.stream(slots).anyMatch(used -> used == s)) {
                continue;
            }
            for (int i = slot * stateFloats; i < (slot + 1) * stateFloats; i++) {
                if (Float.floatToRawIntBits(actual[i]) != Float.floatToRawIntBits(initial[i])) {
                    throw new AssertionError("state slot " + slot + " belongs to no sequence of the batch but element "
                            + (i - slot * stateFloats) + " changed from " + initial[i] + " to " + actual[i]);
                }
            }
        }
    }
}
