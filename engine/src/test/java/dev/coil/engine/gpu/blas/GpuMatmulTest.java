package dev.coil.engine.gpu.blas;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.TestMatrices;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ref.ReferenceOps;
import static org.assertj.core.api.Assertions.assertThat;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * out = x · wᵀ through cuBLAS against the reference matmul, w (rows, cols) row-major as Matrix
 * stores it. Two comparisons: with x rounded to the weight's type first (what the device computes:
 * only f32 summation order may differ), and with the CPU's f32 x (the rounding of x is the whole
 * difference, a few parts in a thousand for bf16).
 */
@GpuTest
class GpuMatmulTest {

    private static Cublas cublas;
    private static GpuMatmul matmul;

    private final ReferenceOps reference = new ReferenceOps();

    @BeforeAll
    static void createHandle() {
        cublas = Cublas.create(GpuFixture.device());
        matmul = new GpuMatmul(GpuFixture.device(), cublas);
        System.out.println("[gpu] cuBLAS " + cublas.describe());
    }

    @AfterAll
    static void destroyHandle() {
        if (matmul != null) {
            matmul.close();
        }
        if (cublas != null) {
            cublas.close();
        }
    }

    @ParameterizedTest(name = "{0}: tokens {1}, rows {2}, cols {3}")
    @CsvSource({
        "BF16,1,1000,777",
        "BF16,7,129,4099",
        "BF16,33,2048,256",
        "BF16,1,1,1",
        "F16,5,301,515",
        "F32,3,257,1025",
        "F32,1,64,8",
        "BF16,300,129,256",
        "F32,130,64,72",
        "BF16,256,40,96"
    })
    void matchesTheReferenceMatmul(DType dtype, int tokens, int rows, int cols) {
        Random random = new Random(tokens * 1_000_003L + rows * 31L + cols + dtype.ordinal());
        float[] weights = Parity.uniform(random, rows * cols, -1, 1);
        Matrix w = TestMatrices.of(weights, rows, cols, dtype);
        float[] x = Parity.uniform(random, tokens * cols, -2, 2);
        float[] rounded = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            rounded[i] = TestMatrices.round(x[i], dtype);
        }
        float[] expectedRounded = new float[tokens * rows];
        reference.matmul(rounded, tokens, w, expectedRounded);
        float[] expectedCpu = new float[tokens * rows];
        reference.matmul(x, tokens, w, expectedCpu);

        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix deviceW = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            DeviceBuffer out = scope.poisoned(expectedRounded.length);
            matmul.matmul(scope.stream(), scope.upload(x), tokens, deviceW, out);
            float[] actual = scope.download(out, expectedRounded.length);
            String what = "gemm " + dtype + " tokens " + tokens + " rows " + rows + " cols " + cols;
            Parity.assertClose(what + " vs rounded x", actual, expectedRounded, 1e-5);
            Parity.assertClose(what + " vs f32 x", actual, expectedCpu, dtype == DType.F32 ? 1e-5 : 1e-2);
        }
    }

    /**
     * Products whose token counts share a bucket replay one cuBLASLt algorithm (one search), and each
     * equals the reference: the algorithm chosen for the bucket's largest count serves the smaller
     * ones, with and without a workspace (split products need one).
     */
    @Test
    void tokenCountsOfOneBucketShareOneAlgorithmSearch() {
        assertThat(cublas.usesLt()).as("cuBLASLt beside cuBLAS on the GPU machine").isTrue();
        int rows = 1000;
        int cols = 768;
        Random random = new Random(11);
        Matrix w = TestMatrices.of(Parity.uniform(random, rows * cols, -1, 1), rows, cols, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope(); Cublas withWorkspace = Cublas.create(GpuFixture.device());
                GpuMatmul split = new GpuMatmul(GpuFixture.device(), withWorkspace)) {
            withWorkspace.useWorkspace(scope.keep(GpuFixture.device().allocate(32L << 20)));
            DeviceMatrix deviceW = scope.keep(DeviceMatrix.upload(GpuFixture.device(), w));
            for (GpuMatmul products : new GpuMatmul[] {matmul, split}) {
                Cublas handle = products == matmul ? cublas : withWorkspace;
                long before = handle.algorithmSearches();
                // 65 .. 96 share the bucket 96; 97 starts the bucket 128; 2047 and 2064 lie in 2048 and 3072.
                int[] counts = {96, 65, 70, 97, 2047, 2064};
                long[] searchesAfter = {1, 1, 1, 2, 3, 4};
                for (int i = 0; i < counts.length; i++) {
                    int tokens = counts[i];
                    float[] x = Parity.uniform(random, tokens * cols, -2, 2);
                    float[] rounded = new float[x.length];
                    for (int j = 0; j < x.length; j++) {
                        rounded[j] = TestMatrices.round(x[j], DType.BF16);
                    }
                    float[] expected = new float[tokens * rows];
                    reference.matmul(rounded, tokens, w, expected);
                    DeviceBuffer out = scope.poisoned(expected.length);
                    products.matmul(scope.stream(), scope.upload(x), tokens, deviceW, out);
                    Parity.assertClose("cuBLASLt, " + tokens + " tokens" + (products == split ? ", workspace" : ""),
                            scope.download(out, expected.length), expected, 1e-5);
                    assertThat(handle.algorithmSearches() - before).as("searches after %d tokens", tokens)
                            .isEqualTo(searchesAfter[i]);
                }
            }
        }
    }
    /**
     * prepare searches each distinct shape's buckets once, up to the largest count any plan gives
     * it, and the products that follow within those buckets search nothing more and stay exact.
     */
    @Test
    void preparedBucketsAreNotSearchedAgain() {
        assertThat(cublas.usesLt()).as("cuBLASLt beside cuBLAS on the GPU machine").isTrue();
        Random random = new Random(12);
        Matrix wide = TestMatrices.of(Parity.uniform(random, 1000 * 768, -1, 1), 1000, 768, DType.BF16);
        Matrix narrow = TestMatrices.of(Parity.uniform(random, 512 * 256, -1, 1), 512, 256, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope(); Cublas handle = Cublas.create(GpuFixture.device());
                GpuMatmul products = new GpuMatmul(GpuFixture.device(), handle)) {
            DeviceMatrix deviceWide = scope.keep(DeviceMatrix.upload(GpuFixture.device(), wide));
            DeviceMatrix deviceNarrow = scope.keep(DeviceMatrix.upload(GpuFixture.device(), narrow));
            // wide: buckets 32, 48, 64, 96, 128 (its larger plan wins); narrow: 32, 48; the plan of
            // 16 rows is left to the few-rows kernels.
            int run = products.prepare(scope.stream(), List.of(
                    new GpuMatmul.Plan(List.of(deviceWide, deviceNarrow), 40),
                    new GpuMatmul.Plan(List.of(deviceWide), 100),
                    new GpuMatmul.Plan(List.of(deviceNarrow), GemvKernel.MAX_PLAIN_ROWS)));
            assertThat(run).isEqualTo(7);
            assertThat(handle.algorithmSearches()).isEqualTo(7);
            int[][] steps = {{70, 0}, {100, 0}, {40, 1}, {33, 1}};
            for (int[] step : steps) {
                int tokens = step[0];
                Matrix w = step[1] == 0 ? wide : narrow;
                float[] x = Parity.uniform(random, tokens * w.cols(), -2, 2);
                float[] rounded = new float[x.length];
                for (int j = 0; j < x.length; j++) {
                    rounded[j] = TestMatrices.round(x[j], DType.BF16);
                }
                float[] expected = new float[tokens * w.rows()];
                reference.matmul(rounded, tokens, w, expected);
                DeviceBuffer out = scope.poisoned(expected.length);
                products.matmul(scope.stream(), scope.upload(x), tokens, step[1] == 0 ? deviceWide : deviceNarrow,
                        out);
                Parity.assertClose("prepared, " + tokens + " tokens", scope.download(out, expected.length), expected,
                        1e-5);
            }
            assertThat(handle.algorithmSearches()).as("searches after the prepared buckets' products").isEqualTo(7);
            float[] beyond = Parity.uniform(random, 129 * 768, -2, 2);
            products.matmul(scope.stream(), scope.upload(beyond), 129, deviceWide, scope.poisoned(129 * 1000));
            assertThat(handle.algorithmSearches()).as("a bucket not prepared").isEqualTo(8);
        }
    }
}
