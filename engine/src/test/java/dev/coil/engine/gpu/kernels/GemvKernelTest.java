package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.TestMatrices;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ref.ReferenceOps;
import java.util.ArrayList;
import java.util.Arrays;
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
        "7,24,1;2;3",
        "3,768,3352;40",
        "4,1536,768",
        "6,2048,70;1;33",
        "8,2560,129",
        "5,32,16",
        "7,768,3352",
        "8,1536,768;40",
        "12,768,3352",
        "16,1024,70;1;33",
        "16,32,16",
        "1,2688,4096",
        "3,2688,1024"
    })
    void f32OperandMatchesTheReferenceWithXRoundedToBf16(int rows, int cols, String outputs) {
        Random random = new Random(rows * 31L + cols);
        float[] x = Parity.uniform(random, rows * cols, -2, 2);
        float[] rounded = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            rounded[i] = TestMatrices.round(x[i], DType.BF16);
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
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
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
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

    /** A row's product on the tensor cores has the same bits in any batch of 3 to 16 rows. */
    @Test
    void tensorCoreRowsDoNotDependOnTheOtherRows() {
        int cols = 1024;
        int n = 777;
        Random random = new Random(77);
        float[] x = Parity.uniform(random, 16 * cols, -2, 2);
        Matrix w = TestMatrices.of(Parity.uniform(random, n * cols, -1, 1), n, cols, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer xDevice = scope.upload(x);
            float[][] results = new float[17][];
            for (int rows : new int[] {3, 5, 8, 12, 16}) {
                assertThat(gemv.supportsPlain(rows, weights)).isTrue();
                DeviceBuffer out = scope.poisoned((long) rows * n);
                gemv.project(scope.stream(), xDevice, DType.F32, cols, rows, List.of(new GemvKernel.Product(weights, out)));
                results[rows] = scope.download(out, rows * n);
            }
            Parity.assertExact("first 3 rows of 5 against 3 alone", Arrays.copyOf(results[5], 3 * n), results[3]);
            Parity.assertExact("first 5 rows of 8 against 5 alone", Arrays.copyOf(results[8], 5 * n), results[5]);
            Parity.assertExact("first 8 rows of 12 against 8 alone", Arrays.copyOf(results[12], 8 * n), results[8]);
            Parity.assertExact("first 12 rows of 16 against 12 alone", Arrays.copyOf(results[16], 12 * n),
                    results[12]);
        }
    }

    @ParameterizedTest(name = "rows {0}, width {1}")
    @CsvSource({"1,2048", "3,1000", "8,96"})
    void siluProductInsideTheLaunchEqualsTheSeparateKernel(int rows, int width) {
        Random random = new Random(rows + width);
        float[] stacked = Parity.uniform(random, rows * 2 * width, -4, 4);
        Matrix w = TestMatrices.of(Parity.uniform(random, 300 * width, -1, 1), 300, width, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
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

    @ParameterizedTest(name = "rows {0}, hidden {1}, width {2}, residual norm {3}")
    @CsvSource({"1,768,2048,true", "1,768,2048,false", "1,520,104,true", "2,776,1032,false", "3,256,64,true",
        "8,1000,296,false", "4,768,2048,true", "8,768,2048,true", "5,768,128,false", "7,768,2048,false",
        "16,768,2048,false", "12,992,296,false", "1,2688,3712,true", "4,2688,3712,true"})
    void siluPairEndingGateAndUpEqualsTheSeparateSiluProduct(int rows, int hidden, int width, boolean residualNorm) {
        Random random = new Random(rows * 7L + hidden + width);
        float[] x = Parity.uniform(random, rows * hidden, -2, 2);
        float[] update = Parity.uniform(random, rows * hidden, -1, 1);
        float[] normWeight = Parity.uniform(random, hidden, 0.5, 1.5);
        Matrix stacked = TestMatrices.of(Parity.uniform(random, 2 * width * hidden, -1, 1), 2 * width, hidden,
                DType.BF16);
        Matrix down = TestMatrices.of(Parity.uniform(random, 40 * width, -1, 1), 40, width, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
            DeviceMatrix gateAndUp = scope.keep(DeviceMatrix.upload(GpuFixture.device(), stacked));
            DeviceMatrix downWeights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), down));
            DeviceBuffer input = scope.upload(x);
            GemvKernel.ResidualNorm norm = new GemvKernel.ResidualNorm(input, scope.upload(update), 0.5f,
                    scope.poisoned((long) rows * hidden), scope.upload(normWeight), 1e-5f);

            // Separate: the f32 gate and up, then silu(gate) · up rounded to bf16 by its own kernel.
            DeviceBuffer gateUp = scope.poisoned(2L * rows * width);
            List<GemvKernel.Product> stackedProduct = List.of(new GemvKernel.Product(gateAndUp, gateUp));
            if (residualNorm) {
                gemv.projectResidualNorm(scope.stream(), norm, rows, stackedProduct);
            } else {
                gemv.project(scope.stream(), input, DType.F32, hidden, rows, stackedProduct);
            }
            DeviceBuffer separate16 = scope.poisoned((long) rows * width / 2);
            new SiluMultiplyKernel(GpuFixture.kernels()).launchStacked(scope.stream(), gateUp, rows, width, separate16,
                    DType.BF16);

            DeviceBuffer fused16 = scope.poisoned((long) rows * width / 2);
            GemvKernel.SiluPair pair = new GemvKernel.SiluPair(gateAndUp, fused16);
            if (residualNorm) {
                gemv.projectResidualNorm(scope.stream(), norm, rows, pair);
            } else {
                gemv.projectSiluPair(scope.stream(), input, DType.F32, hidden, rows, pair);
            }
            Parity.assertExact("bf16 silu(gate) · up at the end of gate and up", scope.download(fused16,
                    rows * width / 2), scope.download(separate16, rows * width / 2));

            DeviceBuffer fromPair = scope.poisoned(rows * 40L);
            DeviceBuffer fromSiluOperand = scope.poisoned(rows * 40L);
            if (rows > GemvKernel.KERNEL_ROWS) {
                return; // no silu(gate) · up operand in the launch at more rows: the hidden rows above suffice
            }
            gemv.project(scope.stream(), fused16, DType.BF16, width, rows,
                    List.of(new GemvKernel.Product(downWeights, fromPair)));
            gemv.projectSiluProduct(scope.stream(), gateUp, 2 * width, gateUp.floatSlice(width, gateUp.floats() - width),
                    2 * width, rows, new GemvKernel.Product(downWeights, fromSiluOperand));
            Parity.assertExact("down of the pair's hidden against down making silu(gate) · up itself",
                    scope.download(fromPair, rows * 40), scope.download(fromSiluOperand, rows * 40));
        }
    }

    @ParameterizedTest(name = "rows {0}, dim {1}, group {2}")
    @CsvSource({"1,1536,1536", "2,256,64", "5,1024,128", "3,96,48", "4,1536,1536", "8,1536,1536", "1,4096,512",
        "3,4096,512"})
    void gatedNormInsideTheLaunchMatchesTheSeparateKernelAndTheReference(int rows, int dim, int group) {
        Random random = new Random(rows * 7L + dim + group);
        int zStride = 3 * dim + 11; // z read in place within in_proj's wider rows
        float[] y = Parity.uniform(random, rows * dim, -2, 2);
        float[] wide = Parity.uniform(random, rows * zStride, -3, 3);
        float[] normWeight = Parity.uniform(random, dim, 0.5, 1.5);
        Matrix w = TestMatrices.of(Parity.uniform(random, 129 * dim, -1, 1), 129, dim, DType.BF16);
        float eps = 1e-5f;
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
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
            Parity.assertExact("gated norm inside the product vs the separate kernel", actual,
                    scope.download(separate, rows * 129));

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

    @ParameterizedTest(name = "rows {0}, dim {1}, first block {2}")
    @CsvSource({"1,768,false", "1,768,true", "3,1000,false", "8,2048,false", "2,24,true", "4,768,false",
            "7,768,true", "3,1024,false", "1,2688,false", "1,2688,true", "4,2688,true", "2,3136,false"})
    void residualUpdateAndNormInsideTheLaunchEqualTheSeparateKernel(int rows, int dim, boolean first) {
        Random random = new Random(rows * 5L + dim + (first ? 1 : 0));
        float[] h = Parity.uniform(random, rows * dim, -3, 3);
        float[] update = Parity.uniform(random, rows * dim, -2, 2);
        float[] normWeight = Parity.uniform(random, dim, 0.5, 1.5);
        float multiplier = 0.22f;
        float eps = 1e-5f;
        Matrix w0 = TestMatrices.of(Parity.uniform(random, 40 * dim, -1, 1), 40, dim, DType.BF16);
        Matrix w1 = TestMatrices.of(Parity.uniform(random, 17 * dim, -1, 1), 17, dim, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
            RmsNormKernel norm = new RmsNormKernel(GpuFixture.kernels());
            DeviceMatrix weights0 = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w0));
            DeviceMatrix weights1 = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w1));
            DeviceBuffer weight = scope.upload(normWeight);
            DeviceBuffer updateDevice = scope.upload(update);

            DeviceBuffer separateH = scope.upload(h);
            DeviceBuffer normed16 = scope.poisoned((long) rows * dim / 2);
            if (first) {
                norm.launch(scope.stream(), separateH, rows, dim, weight, eps, normed16, DType.BF16);
            } else {
                norm.launchAfterResidual(scope.stream(), separateH, updateDevice, multiplier, rows, dim, weight, eps,
                        normed16, DType.BF16);
            }
            DeviceBuffer separate0 = scope.poisoned(rows * 40L);
            DeviceBuffer separate1 = scope.poisoned(rows * 17L);
            gemv.project(scope.stream(), normed16, DType.BF16, dim, rows, List.of(
                    new GemvKernel.Product(weights0, separate0), new GemvKernel.Product(weights1, separate1)));

            DeviceBuffer fusedH = scope.upload(h);
            DeviceBuffer hOut = scope.poisoned((long) rows * dim);
            DeviceBuffer fused0 = scope.poisoned(rows * 40L);
            DeviceBuffer fused1 = scope.poisoned(rows * 17L);
            gemv.projectResidualNorm(scope.stream(), new GemvKernel.ResidualNorm(fusedH, first ? null : updateDevice,
                    multiplier, first ? null : hOut, weight, eps), rows, List.of(
                    new GemvKernel.Product(weights0, fused0), new GemvKernel.Product(weights1, fused1)));
            Parity.assertExact("residual + norm inside the product (product 0)", scope.download(fused0, rows * 40),
                    scope.download(separate0, rows * 40));
            Parity.assertExact("residual + norm inside the product (product 1)", scope.download(fused1, rows * 17),
                    scope.download(separate1, rows * 17));
            Parity.assertExact("h it reads is left as it was", scope.download(fusedH, rows * dim), h);
            if (!first) {
                Parity.assertExact("updated residual stream written to hOut", scope.download(hOut, rows * dim),
                        scope.download(separateH, rows * dim));
            }
        }
    }

    /**
     * The lean kernels (-Dcoil.cuda.gemvOverlap, on by default) compute what the others do, bit for bit,
     * for one row, two and four.
     */
    @ParameterizedTest(name = "outputs {0}, first block {1}, rows {2}")
    @CsvSource({"3352,false,1", "5003,true,1", "2049,false,1", "3352,false,2", "5003,true,2", "2049,true,2",
            "3352,true,3", "4097,false,4"})
    void leanWideKernelEqualsTheDefaultOne(int outputs, boolean first, int rows) {
        int dim = 768;
        Random random = new Random(outputs);
        float[] h = Parity.uniform(random, rows * dim, -3, 3);
        float[] update = Parity.uniform(random, rows * dim, -2, 2);
        float[] normWeight = Parity.uniform(random, dim, 0.5, 1.5);
        Matrix w = TestMatrices.of(Parity.uniform(random, outputs * dim, -1, 1), outputs, dim, DType.BF16);
        // Without the tensor-core kernels, so that 3 and 4 rows take the CUDA-core kernels that have
        // lean twins (on tensor cores both launchers would run the same mma kernel).
        String previousMma = System.setProperty(GemvKernel.MMA_PROPERTY, "false");
        String previous = System.setProperty(KernelModule.GEMV_OVERLAP_PROPERTY, "true");
        GemvKernel lean;
        GemvKernel standard;
        try {
            lean = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
            System.setProperty(KernelModule.GEMV_OVERLAP_PROPERTY, "false");
            standard = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
        } finally {
            restore(KernelModule.GEMV_OVERLAP_PROPERTY, previous);
            restore(GemvKernel.MMA_PROPERTY, previousMma);
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer weight = scope.upload(normWeight);
            DeviceBuffer updateDevice = first ? null : scope.upload(update);
            float[][] results = new float[2][];
            GemvKernel[] launchers = {standard, lean};
            for (int i = 0; i < 2; i++) {
                DeviceBuffer out = scope.poisoned((long) rows * outputs);
                launchers[i].projectResidualNorm(scope.stream(), new GemvKernel.ResidualNorm(scope.upload(h),
                        updateDevice, 0.22f, first ? null : scope.poisoned((long) rows * dim), weight, 1e-5f), rows,
                        List.of(new GemvKernel.Product(weights, out)));
                results[i] = scope.download(out, rows * outputs);
            }
            Parity.assertExact("lean kernel against the default one, " + rows + " rows", results[1], results[0]);
        }
    }

    @ParameterizedTest(name = "rows {0}, conv kernel {1}, bias {2}")
    @CsvSource({"1,4,true,136", "2,4,false,136", "2,2,true,136", "1,1,true,136", "4,4,true,128", "8,3,false,256",
        "6,4,true,128", "16,4,true,128", "11,3,false,256"})
    void convUpdateAtTheEndOfTheProductEqualsTheSeparateKernel(int rows, int convKernel, boolean bias, int cols) {
        int slotCount = 17;
        int[] slots = java.util.Arrays.copyOf(new int[] {3, 0, 4, 8, 1, 6, 2, 7, 16, 9, 12, 10, 15, 11, 14, 13},
                rows);
        Random random = new Random(rows * 11L + convKernel);
        float[] x = Parity.uniform(random, rows * cols, -2, 2);
        Matrix w = TestMatrices.of(Parity.uniform(random, ConvAtTheEnd.WIDTH * cols, -1, 1), ConvAtTheEnd.WIDTH, cols,
                DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
            DeviceMatrix weights = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer xDevice = scope.upload(x);
            ConvAtTheEnd.assertLikeTheSeparateKernel(scope, random, rows, convKernel, bias, slots, slotCount,
                    (out, conv) -> {
                        List<GemvKernel.Product> product = List.of(new GemvKernel.Product(weights, out));
                        if (conv == null) {
                            gemv.project(scope.stream(), xDevice, DType.F32, cols, rows, product);
                        } else {
                            gemv.project(scope.stream(), xDevice, DType.F32, cols, rows, product, conv);
                        }
                    });
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
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
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
    void takesBf16WeightsAndItsRowsOnly() {
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
            DeviceMatrix bf16 = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(new float[16 * 64], 16, 64, DType.BF16)));
            DeviceMatrix f32 = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(new float[16 * 64], 16, 64, DType.F32)));
            DeviceMatrix oddColumns = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(new float[16 * 63], 16, 63, DType.BF16)));
            assertThat(gemv.supports(1, bf16)).isTrue();
            assertThat(gemv.supports(8, bf16)).isTrue();
            assertThat(gemv.supports(9, bf16)).isFalse();
            GemvKernel routed = new GemvKernel(GpuFixture.kernels());
            assertThat(routed.supports(GemvKernel.MAX_ROWS, bf16)).isTrue();
            assertThat(routed.supports(GemvKernel.MAX_ROWS + 1, bf16)).as("more rows with a fused operand: cuBLAS")
                    .isFalse();
            assertThat(routed.supportsPlain(GemvKernel.MAX_PLAIN_ROWS, bf16)).as("a plain operand, tensor cores")
                    .isTrue();
            assertThat(routed.supportsPlain(GemvKernel.MAX_PLAIN_ROWS + 1, bf16)).as("more rows go to cuBLAS")
                    .isFalse();
            assertThat(routed.supportsPlain(GemvKernel.MAX_ROWS + 1, oddColumns)).as("not a multiple of 32 wide")
                    .isFalse();
            DeviceMatrix wide = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(new float[16 * 2048], 16, 2048, DType.BF16)));
            assertThat(routed.supportsPlain(8, wide)).isTrue();
            assertThat(routed.supportsPlain(9, wide)).as("9 to 16 rows only up to 1024 wide").isFalse();
            assertThat(gemv.supports(0, bf16)).isFalse();
            assertThat(gemv.supports(1, f32)).isFalse();
            assertThat(gemv.supports(1, oddColumns)).isFalse();
            DeviceBuffer weight = scope.upload(new float[64]);
            assertThat(gemv.supports(1, bf16, new GemvKernel.Norm(weight, 32, 1e-5f))).isTrue();
            assertThat(gemv.supports(1, bf16, new GemvKernel.Norm(weight, 16, 1e-5f))).isTrue();
            assertThat(gemv.supports(1, bf16, new GemvKernel.Norm(weight, 48, 1e-5f))).isFalse();
        }
    }

    private static void restore(String property, String previous) {
        if (previous == null) {
            System.clearProperty(property);
        } else {
            System.setProperty(property, previous);
        }
    }
}
