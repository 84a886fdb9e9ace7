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
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The few-rows product (gemv.cu) against the double-precision reference matmul with x rounded to
 * bf16 (what it multiplies), on odd sizes: one to three products per launch, rows in every bucket,
 * widths over one pass of 2048 columns. The fused operands equal the separate kernels they replace.
 */
@GpuTest
class GemvKernelTest {

    private final ReferenceOps reference = new ReferenceOps();

    @ParameterizedTest(name = "rows {0}, cols {1}, outputs {2}")
    @CsvSource({
        "1,8,1",
        "1,768,3352",
        "2,776,13;7;1001",
        "3,1536,768",
        "5,2056,9;4",
        "8,2056,33",
        "2,4104,17",
        "7,24,1;2;3"
    })
    void f32OperandMatchesTheReferenceWithXRoundedToBf16(int rows, int cols, String outputs) {
        Random random = new Random(rows * 31L + cols);
        float[] x = Parity.uniform(random, rows * cols, -2, 2);
        float[] rounded = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            rounded[i] = TestMatrices.round(x[i], DType.BF16);
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels());
            List<Matrix> matrices = new ArrayList<>();
            List<GemvKernel.Product> products = new ArrayList<>();
            for (String count : outputs.split(";")) {
                int n = Integer.parseInt(count);
                Matrix w = TestMatrices.of(Parity.uniform(random, n * cols, -1, 1), n, cols, DType.BF16);
                matrices.add(w);
                products.add(new GemvKernel.Product(scope.keep(DeviceMatrix.upload(GpuFixture.device(), w)),
                        scope.poisoned((long) rows * n)));
            }
            gemv.project(scope.stream(), scope.upload(x), DType.F32, cols, rows, products);
            for (int p = 0; p < products.size(); p++) {
                Matrix w = matrices.get(p);
                float[] expected = new float[rows * w.rows()];
                reference.matmul(rounded, rows, w, expected);
                Parity.assertClose("gemv rows " + rows + " × [" + w.rows() + ", " + cols + "] (product " + p + ")",
                        scope.download(products.get(p).out(), expected.length), expected, 1e-5);
            }
        }
    }

    @Test
    void stridedBf16OperandGivesTheF32OperandsResults() {
        int rows = 4;
        int cols = 520;
        int stride = 600;
        Random random = new Random(4);
        float[] wide = Parity.uniform(random, rows * stride, -2, 2);
        Matrix w = TestMatrices.of(Parity.uniform(random, 77 * cols, -1, 1), 77, cols, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels());
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer x = scope.upload(wide);
            DeviceBuffer x16 = scope.poisoned(wide.length / 2);
            new ConvertKernel(GpuFixture.kernels()).launch(scope.stream(), x, wide.length, DType.BF16, x16);
            DeviceBuffer fromF32 = scope.poisoned(rows * 77L);
            DeviceBuffer fromBf16 = scope.poisoned(rows * 77L);
            gemv.project(scope.stream(), x, DType.F32, stride, rows, List.of(new GemvKernel.Product(weights, fromF32)));
            gemv.project(scope.stream(), x16, DType.BF16, stride, rows,
                    List.of(new GemvKernel.Product(weights, fromBf16)));
            Parity.assertExact("gemv of a strided operand, bf16 vs f32", scope.download(fromBf16, rows * 77),
                    scope.download(fromF32, rows * 77));
        }
    }

    @ParameterizedTest(name = "rows {0}, width {1}")
    @CsvSource({"1,2048", "3,1000", "8,96"})
    void siluProductInsideTheLaunchEqualsTheSeparateKernel(int rows, int width) {
        Random random = new Random(rows + width);
        float[] stacked = Parity.uniform(random, rows * 2 * width, -4, 4);
        Matrix w = TestMatrices.of(Parity.uniform(random, 300 * width, -1, 1), 300, width, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels());
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer input = scope.upload(stacked);
            DeviceBuffer hidden16 = scope.poisoned((long) rows * width / 2);
            new SiluMultiplyKernel(GpuFixture.kernels()).launchStacked(scope.stream(), input, rows, width, hidden16,
                    DType.BF16);
            DeviceBuffer separate = scope.poisoned(rows * 300L);
            gemv.project(scope.stream(), hidden16, DType.BF16, width, rows,
                    List.of(new GemvKernel.Product(weights, separate)));
            DeviceBuffer fused = scope.poisoned(rows * 300L);
            gemv.projectSiluProduct(scope.stream(), input, 2 * width, input.floatSlice(width, input.floats() - width),
                    2 * width, rows, new GemvKernel.Product(weights, fused));
            Parity.assertExact("silu(gate) · up inside the product", scope.download(fused, rows * 300),
                    scope.download(separate, rows * 300));
        }
    }

    @ParameterizedTest(name = "rows {0}, dim {1}, group {2}")
    @CsvSource({"1,1536,1536", "2,256,64", "5,1024,128"})
    void gatedNormInsideTheLaunchMatchesTheSeparateKernelAndTheReference(int rows, int dim, int group) {
        Random random = new Random(rows * 7L + dim + group);
        int zStride = 3 * dim + 11; // z read in place within in_proj's wider rows
        float[] y = Parity.uniform(random, rows * dim, -2, 2);
        float[] wide = Parity.uniform(random, rows * zStride, -3, 3);
        float[] normWeight = Parity.uniform(random, dim, 0.5, 1.5);
        Matrix w = TestMatrices.of(Parity.uniform(random, 129 * dim, -1, 1), 129, dim, DType.BF16);
        float eps = 1e-5f;
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels());
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer yDevice = scope.upload(y);
            DeviceBuffer z = scope.upload(wide);
            DeviceBuffer weight = scope.upload(normWeight);
            DeviceBuffer gated16 = scope.poisoned((long) rows * dim / 2);
            new GatedRmsNormKernel(GpuFixture.kernels()).launch(scope.stream(), yDevice, z, zStride, rows, dim, group,
                    weight, eps, gated16, DType.BF16);
            DeviceBuffer separate = scope.poisoned(rows * 129L);
            gemv.project(scope.stream(), gated16, DType.BF16, dim, rows,
                    List.of(new GemvKernel.Product(weights, separate)));
            DeviceBuffer fused = scope.poisoned(rows * 129L);
            GemvKernel.Norm norm = new GemvKernel.Norm(weight, group, eps);
            assertThat(gemv.supports(rows, weights, norm)).isTrue();
            gemv.projectGatedNorm(scope.stream(), yDevice, dim, z, zStride, norm, rows,
                    new GemvKernel.Product(weights, fused));
            float[] actual = scope.download(fused, rows * 129);
            // The group sums are added in another order than the separate kernel's, which can move a
            // rare operand by one bf16 step: a few parts in 10⁴ of the output's scale.
            Parity.assertClose("gated norm inside the product vs the separate kernel", actual,
                    scope.download(separate, rows * 129), 2e-3);

            float[] gated = new float[rows * dim];
            for (int r = 0; r < rows; r++) {
                for (int g = 0; g < dim / group; g++) {
                    double squares = 0;
                    for (int i = g * group; i < (g + 1) * group; i++) {
                        double z1 = wide[r * zStride + i];
                        double value = y[r * dim + i] * z1 / (1 + Math.exp(-z1));
                        squares += value * value;
                    }
                    double inverseRms = 1 / Math.sqrt(squares / group + eps);
                    for (int i = g * group; i < (g + 1) * group; i++) {
                        double z1 = wide[r * zStride + i];
                        gated[r * dim + i] = (float) (normWeight[i] * y[r * dim + i] * z1 / (1 + Math.exp(-z1))
                                * inverseRms);
                    }
                }
            }
            float[] expected = new float[rows * 129];
            reference.matmul(gated, rows, w, expected);
            // Against the unrounded reference: the bf16 rounding of the operand is the difference.
            Parity.assertClose("gated norm inside the product vs the double-precision reference", actual, expected,
                    1e-2);
        }
    }

    @Test
    void waitsForTheKernelThatWritesItsOperand() {
        // Each product is queued right behind the conversion that writes its operand, with no host
        // synchronization: a launch that read x before that kernel finished would see the previous value.
        int cols = 2048;
        int rows = 1;
        Random random = new Random(11);
        Matrix w = TestMatrices.of(Parity.uniform(random, 4096 * cols, -1, 1), 4096, cols, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels());
            ConvertKernel convert = new ConvertKernel(GpuFixture.kernels());
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer x16 = scope.poisoned(cols / 2);
            List<float[]> inputs = new ArrayList<>();
            List<DeviceBuffer> outs = new ArrayList<>();
            for (int step = 0; step < 12; step++) {
                float[] x = Parity.uniform(random, cols, -2, 2);
                inputs.add(x);
                DeviceBuffer out = scope.poisoned(4096);
                outs.add(out);
                convert.launch(scope.stream(), scope.upload(x), cols, DType.BF16, x16);
                gemv.project(scope.stream(), x16, DType.BF16, cols, rows, List.of(new GemvKernel.Product(weights, out)));
            }
            for (int step = 0; step < inputs.size(); step++) {
                float[] rounded = inputs.get(step).clone();
                for (int i = 0; i < cols; i++) {
                    rounded[i] = TestMatrices.round(rounded[i], DType.BF16);
                }
                float[] expected = new float[4096];
                reference.matmul(rounded, 1, w, expected);
                Parity.assertClose("product " + step + " after the kernel writing its operand",
                        scope.download(outs.get(step), 4096), expected, 1e-5);
            }
        }
    }

    @Test
    void takesBf16WeightsAndUpToEightRowsOnly() {
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels());
            DeviceMatrix bf16 = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(new float[16 * 64], 16, 64, DType.BF16)));
            DeviceMatrix f32 = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(new float[16 * 64], 16, 64, DType.F32)));
            DeviceMatrix oddColumns = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(new float[16 * 63], 16, 63, DType.BF16)));
            assertThat(gemv.supports(1, bf16)).isTrue();
            assertThat(gemv.supports(8, bf16)).isTrue();
            assertThat(gemv.supports(9, bf16)).isFalse();
            assertThat(gemv.supports(0, bf16)).isFalse();
            assertThat(gemv.supports(1, f32)).isFalse();
            assertThat(gemv.supports(1, oddColumns)).isFalse();
            DeviceBuffer weight = scope.upload(new float[64]);
            assertThat(gemv.supports(1, bf16, new GemvKernel.Norm(weight, 32, 1e-5f))).isTrue();
            assertThat(gemv.supports(1, bf16, new GemvKernel.Norm(weight, 16, 1e-5f))).isFalse();
        }
    }
}
