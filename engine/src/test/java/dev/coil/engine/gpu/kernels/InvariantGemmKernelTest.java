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
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The batch-invariant product (gemm_invariant.cu) against the double-precision reference with x
 * rounded to the weights' type, on odd sizes (rows on both kernels, widths past one segment, past
 * the few-rows kernel's segments, not a multiple of 8), and its point: a row's outputs are the same
 * bits alone, among 16, among 150, at any place among them, and through either kernel.
 */
@GpuTest
class InvariantGemmKernelTest {

    private final ReferenceOps reference = new ReferenceOps();

    @ParameterizedTest(name = "{0} weights, {1} operand, rows {2}, cols {3}, outputs {4}")
    @CsvSource({
        "BF16,F32,1,8,1",
        "BF16,F32,1,768,3352",
        "BF16,F32,3,1000,77",
        "BF16,F32,16,2056,130",
        "BF16,F32,17,520,129",
        "BF16,F32,70,1536,300",
        "BF16,F32,129,1024,65",
        "BF16,F32,300,768,33",
        "BF16,F32,5,24840,40",
        "BF16,F32,9,30,21",
        "BF16,BF16,4,776,200",
        "BF16,BF16,130,264,257",
        "F16,F32,2,1032,99",
        "F16,F32,65,96,33",
        "F16,F16,16,2048,64",
        "F32,F32,1,37,5",
        "F32,F32,33,70,65",
        "F32,F32,7,1024,100"
    })
    void matchesTheReferenceWithXRoundedToTheWeightsType(DType weights, DType operand, int rows, int cols,
            int outputs) {
        Random random = new Random(rows * 131L + cols * 7L + outputs);
        float[] x = Parity.uniform(random, rows * cols, -2, 2);
        Matrix w = TestMatrices.of(Parity.uniform(random, outputs * cols, -1, 1), outputs, cols, weights);
        float[] rounded = x.clone();
        if (weights != DType.F32) {
            for (int i = 0; i < x.length; i++) {
                rounded[i] = TestMatrices.round(x[i], weights);
            }
        }
        float[] expected = new float[rows * outputs];
        reference.matmul(rounded, rows, w, expected);
        try (DeviceScope scope = GpuFixture.scope()) {
            InvariantGemmKernel gemm = new InvariantGemmKernel(GpuFixture.kernels());
            DeviceMatrix matrix = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer input = operand(scope, x, operand);
            DeviceBuffer out = scope.poisoned((long) rows * outputs);
            gemm.project(scope.stream(), input, operand, rows, matrix, out);
            Parity.assertClose(weights + " × " + operand + " rows " + rows + " × [" + outputs + ", " + cols + "]",
                    scope.download(out, expected.length), expected, 1e-5);
        }
    }

    @ParameterizedTest(name = "{0} weights, {1} operand, cols {2}, outputs {3}")
    @CsvSource({
        "BF16,F32,1536,768",
        "BF16,F32,776,131",
        "BF16,BF16,3072,200",
        "F16,F32,520,64",
        "F32,F32,300,45"
    })
    void aRowsOutputsDoNotDependOnTheRowsBesideIt(DType weights, DType operand, int cols, int outputs) {
        int batch = 150;
        Random random = new Random(cols * 3L + outputs);
        float[] x = Parity.uniform(random, batch * cols, -2, 2);
        Matrix w = TestMatrices.of(Parity.uniform(random, outputs * cols, -1, 1), outputs, cols, weights);
        try (DeviceScope scope = GpuFixture.scope()) {
            InvariantGemmKernel gemm = new InvariantGemmKernel(GpuFixture.kernels());
            DeviceMatrix matrix = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer all = operand(scope, x, operand);
            float[] whole = product(scope, gemm, all, operand, cols, 0, batch, matrix, false);
            // {first row, rows}: alone, a few at an odd place, 16 (one row of few-rows blocks), 17 and 70
            // (several) starting past a tile's edge, and 128 (the few-rows kernel's most).
            int[][] slices = {{0, 1}, {149, 1}, {37, 3}, {5, 16}, {100, 17}, {61, 70}, {22, 128}};
            for (int[] slice : slices) {
                float[] expected = Arrays.copyOfRange(whole, slice[0] * outputs, (slice[0] + slice[1]) * outputs);
                String what = weights + " × " + operand + ": rows " + slice[0] + " .. " + (slice[0] + slice[1] - 1);
                Parity.assertExact(what + " on their own, few-rows kernel",
                        product(scope, gemm, all, operand, cols, slice[0], slice[1], matrix, true), expected);
                Parity.assertExact(what + " on their own, tiles",
                        product(scope, gemm, all, operand, cols, slice[0], slice[1], matrix, false), expected);
            }
        }
    }

    /** rows [first, first + rows) of the operand times w, through the few-rows kernel or the tiles. */
    private static float[] product(DeviceScope scope, InvariantGemmKernel gemm, DeviceBuffer x, DType operand,
            int cols, int first, int rows, DeviceMatrix w, boolean fewRows) {
        long width = (long) cols * operand.bytes();
        DeviceBuffer slice = x.slice(first * width, rows * width);
        DeviceBuffer out = scope.poisoned((long) rows * w.rows());
        gemm.project(scope.stream(), slice, operand, rows, w, out, fewRows);
        return scope.download(out, rows * w.rows());
    }

    /** x on the device as {@code type}: f32 as it is, or rounded to a 16-bit type by ConvertKernel. */
    private static DeviceBuffer operand(DeviceScope scope, float[] x, DType type) {
        DeviceBuffer values = scope.upload(x);
        if (type == DType.F32) {
            return values;
        }
        DeviceBuffer converted = scope.poisoned((x.length + 1) / 2);
        new ConvertKernel(GpuFixture.kernels()).launch(scope.stream(), values, x.length, type, converted);
        return converted;
    }
}
