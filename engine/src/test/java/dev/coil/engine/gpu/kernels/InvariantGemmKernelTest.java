package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The batch-invariant product (gemm_invariant_decode.cu, gemm_invariant_prompt.cu) against the
 * double-precision reference with x rounded to the weights' type, on odd sizes (rows on every
 * kernel, widths past one segment, past the few-rows kernel's segments, not a multiple of 8 or of a
 * window), and its point: a row's outputs are the same bits alone, among 16, among 150, at any place
 * among them, through any of the kernels, and with an f32 operand rounded by the kernel or before it.
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
        "BF16,BF16,257,1544,300",
        "BF16,BF16,300,3080,129",
        "BF16,BF16,150,30,21",
        "F16,F32,2,1032,99",
        "F16,F32,65,96,33",
        "F16,F16,16,2048,64",
        "F16,F16,129,1032,130",
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
        "BF16,BF16,264,257",
        "F16,F16,1032,130",
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
            float[] whole = product(scope, gemm, all, operand, cols, 0, batch, matrix, InvariantGemmKernel.Path.TILES);
            List<InvariantGemmKernel.Path> paths = new ArrayList<>(
                    List.of(InvariantGemmKernel.Path.FEW_ROWS, InvariantGemmKernel.Path.TILES));
            if (weights != DType.F32) {
                paths.add(InvariantGemmKernel.Path.WIDE);
            }
            if (weights != DType.F32 && operand != DType.F32) {
                paths.add(InvariantGemmKernel.Path.PIPELINED);
            }
            // {first row, rows}: alone, a few at an odd place, 16 (one row of few-rows blocks), 17 and 70
            // (several) starting past a tile's edge, and 128 (the few-rows kernel's most).
            int[][] slices = {{0, 1}, {149, 1}, {37, 3}, {5, 16}, {100, 17}, {61, 70}, {22, 128}};
            for (int[] slice : slices) {
                float[] expected = Arrays.copyOfRange(whole, slice[0] * outputs, (slice[0] + slice[1]) * outputs);
                String what = weights + " × " + operand + ": rows " + slice[0] + " .. " + (slice[0] + slice[1] - 1);
                for (InvariantGemmKernel.Path path : paths) {
                    Parity.assertExact(what + " on their own, " + path,
                            product(scope, gemm, all, operand, cols, slice[0], slice[1], matrix, path), expected);
                }
            }
            if (weights != DType.F32 && operand == DType.F32) {
                // The f32 operand rounded before the product (as GpuMatmul rounds a prompt step's for the
                // pipelined kernel): the same bits as rounded inside it.
                DeviceBuffer rounded = operand(scope, x, weights);
                Parity.assertExact(weights + " × F32 rounded first, all rows, PIPELINED",
                        product(scope, gemm, rounded, weights, cols, 0, batch, matrix,
                                InvariantGemmKernel.Path.PIPELINED), whole);
            }
        }
    }

    /**
     * A decode step's in_proj ending in the conv update: the product, the convolved channels and the
     * states bit for bit as the product followed by causal_conv1d_update_f32 leaves them (a step's
     * decode rows take one way or the other as the rows beside them are prompts or not).
     */
    @ParameterizedTest(name = "rows {0}, conv kernel {1}, bias {2}, {3} operand")
    @CsvSource({"1,4,true,F32", "3,4,false,BF16", "17,4,true,F32", "16,2,true,BF16", "40,1,false,F32"})
    void convUpdateAtTheEndOfTheFewRowsKernelEqualsTheSeparateKernel(int rows, int convKernel, boolean bias,
            DType operand) {
        int cols = 776;
        int slotCount = 41;
        int[] slots = new int[rows];
        for (int r = 0; r < rows; r++) {
            slots[r] = (r * 7 + 3) % slotCount;
        }
        Random random = new Random(rows * 13L + convKernel);
        float[] x = Parity.uniform(random, rows * cols, -2, 2);
        Matrix w = TestMatrices.of(Parity.uniform(random, ConvAtTheEnd.WIDTH * cols, -1, 1), ConvAtTheEnd.WIDTH, cols,
                DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            InvariantGemmKernel gemm = new InvariantGemmKernel(GpuFixture.kernels());
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer input = operand(scope, x, operand);
            ConvAtTheEnd.assertLikeTheSeparateKernel(scope, random, rows, convKernel, bias, slots, slotCount,
                    (out, conv) -> {
                        if (conv == null) {
                            gemm.project(scope.stream(), input, operand, rows, weights, out);
                        } else {
                            gemm.projectWithConv(scope.stream(), input, operand, rows, weights, out, conv);
                        }
                    });
        }
    }

    /**
     * A decode step's stacked gate and up ending in bf16 silu(gate) · up: bit for bit what the product
     * followed by silu_multiply_f32 into bf16 makes, widths a multiple of the kernel's four columns
     * and not.
     */
    @ParameterizedTest(name = "rows {0}, width {1}, {2} operand")
    @CsvSource({"1,64,F32", "5,37,BF16", "17,130,F32", "128,16,BF16"})
    void siluOfTheGateTimesUpAtTheEndOfTheFewRowsKernelEqualsTheSeparateKernel(int rows, int width, DType operand) {
        int cols = 520;
        Random random = new Random(rows * 17L + width);
        float[] x = Parity.uniform(random, rows * cols, -2, 2);
        Matrix w = TestMatrices.of(Parity.uniform(random, 2 * width * cols, -1, 1), 2 * width, cols, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            InvariantGemmKernel gemm = new InvariantGemmKernel(GpuFixture.kernels());
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer input = operand(scope, x, operand);
            DeviceBuffer stacked = scope.poisoned(2L * rows * width);
            DeviceBuffer separate = scope.poisoned(Math.ceilDiv(rows * width, 2));
            gemm.project(scope.stream(), input, operand, rows, weights, stacked);
            new SiluMultiplyKernel(GpuFixture.kernels()).launchStacked(scope.stream(), stacked, rows, width, separate,
                    DType.BF16);
            DeviceBuffer fused = scope.poisoned(Math.ceilDiv(rows * width, 2));
            gemm.projectSiluPair(scope.stream(), input, operand, rows, weights, fused);
            int[] expected = bf16Bits(scope.download(separate, Math.ceilDiv(rows * width, 2)), rows * width);
            assertThat(bf16Bits(scope.download(fused, Math.ceilDiv(rows * width, 2)), rows * width))
                    .as("bf16 silu(gate) · up").containsExactly(expected);
        }
    }

    /** The first {@code count} bf16 values packed two a float, as their bits. */
    private static int[] bf16Bits(float[] packed, int count) {
        int[] bits = new int[count];
        for (int i = 0; i < count; i++) {
            bits[i] = (Float.floatToRawIntBits(packed[i / 2]) >>> (16 * (i % 2))) & 0xffff;
        }
        return bits;
    }

    /** rows [first, first + rows) of the operand times w, through the kernel {@code path} names. */
    private static float[] product(DeviceScope scope, InvariantGemmKernel gemm, DeviceBuffer x, DType operand,
            int cols, int first, int rows, DeviceMatrix w, InvariantGemmKernel.Path path) {
        long width = (long) cols * operand.bytes();
        DeviceBuffer slice = x.slice(first * width, rows * width);
        DeviceBuffer out = scope.poisoned((long) rows * w.rows());
        gemm.project(scope.stream(), slice, operand, rows, w, out, path);
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
