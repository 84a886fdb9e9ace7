package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The norms and the SiLU product written straight in bf16 (the operand of the next product) are
 * their f32 results rounded to nearest even, bit for bit; the gated norm reading z in place (rows
 * of in_proj's width) equals it reading a dense copy.
 */
@GpuTest
class Bf16OutputKernelsTest {

    private static final float EPS = 1e-5f;

    @ParameterizedTest(name = "tokens {0}, dim {1}")
    @CsvSource({"1,7", "3,768", "5,2049"})
    void rmsNormInBf16IsItsF32ResultRounded(int tokens, int dim) {
        Random random = new Random(tokens * 13L + dim);
        float[] x = Parity.uniform(random, tokens * dim, -3, 3);
        float[] weight = Parity.uniform(random, dim, 0.5, 1.5);
        try (DeviceScope scope = GpuFixture.scope()) {
            RmsNormKernel kernel = new RmsNormKernel(GpuFixture.kernels());
            DeviceBuffer f32 = scope.poisoned(x.length);
            DeviceBuffer bf16 = scope.poisoned(Math.ceilDiv(x.length, 2));
            kernel.launch(scope.stream(), scope.upload(x), tokens, dim, scope.upload(weight), EPS, f32);
            kernel.launch(scope.stream(), scope.upload(x), tokens, dim, scope.upload(weight), EPS, bf16, DType.BF16);
            assertRounded("rms_norm", scope, f32, bf16, x.length);
        }
    }

    @ParameterizedTest(name = "tokens {0}, dim {1}, {2}")
    @CsvSource({"1,7,F32", "3,768,BF16", "5,2049,F32", "2,1000,BF16"})
    void residualUpdateAndNormInOneLaunchEqualTheTwoLaunches(int tokens, int dim, DType outType) {
        Random random = new Random(tokens * 3L + dim);
        float[] h = Parity.uniform(random, tokens * dim, -3, 3);
        float[] update = Parity.uniform(random, tokens * dim, -2, 2);
        float[] weight = Parity.uniform(random, dim, 0.5, 1.5);
        float multiplier = 0.22f;
        try (DeviceScope scope = GpuFixture.scope()) {
            RmsNormKernel norm = new RmsNormKernel(GpuFixture.kernels());
            DeviceBuffer separateH = scope.upload(h);
            DeviceBuffer separateOut = scope.poisoned(h.length);
            new ResidualAddKernel(GpuFixture.kernels()).launch(scope.stream(), separateH, scope.upload(update),
                    h.length, multiplier);
            norm.launch(scope.stream(), separateH, tokens, dim, scope.upload(weight), EPS, separateOut, outType);
            DeviceBuffer fusedH = scope.upload(h);
            DeviceBuffer fusedOut = scope.poisoned(h.length);
            norm.launchAfterResidual(scope.stream(), fusedH, scope.upload(update), multiplier, tokens, dim,
                    scope.upload(weight), EPS, fusedOut, outType);
            Parity.assertExact("residual stream", scope.download(fusedH, h.length), scope.download(separateH, h.length));
            int words = outType == DType.F32 ? h.length : Math.ceilDiv(h.length, 2);
            Parity.assertExact("residual + norm, " + outType, scope.download(fusedOut, words),
                    scope.download(separateOut, words));
        }
    }

    @ParameterizedTest(name = "tokens {0}, dim {1}, group {2}, stride {3}")
    @CsvSource({"1,64,64,200", "4,256,64,611", "3,1536,1536,3201"})
    void gatedNormReadsZInPlaceAndWritesBf16(int tokens, int dim, int group, int stride) {
        Random random = new Random(dim * 7L + stride);
        float[] y = Parity.uniform(random, tokens * dim, -2, 2);
        float[] wide = Parity.uniform(random, tokens * stride, -3, 3); // z: the first dim columns of each row
        float[] z = new float[tokens * dim];
        for (int t = 0; t < tokens; t++) {
            System.arraycopy(wide, t * stride, z, t * dim, dim);
        }
        float[] weight = Parity.uniform(random, dim, 0.5, 1.5);
        try (DeviceScope scope = GpuFixture.scope()) {
            GatedRmsNormKernel kernel = new GatedRmsNormKernel(GpuFixture.kernels());
            DeviceBuffer dense = scope.poisoned(y.length);
            DeviceBuffer strided = scope.poisoned(y.length);
            DeviceBuffer bf16 = scope.poisoned(Math.ceilDiv(y.length, 2));
            kernel.launch(scope.stream(), scope.upload(y), scope.upload(z), tokens, dim, group, scope.upload(weight),
                    EPS, dense);
            kernel.launch(scope.stream(), scope.upload(y), scope.upload(wide), stride, tokens, dim, group,
                    scope.upload(weight), EPS, strided, DType.F32);
            kernel.launch(scope.stream(), scope.upload(y), scope.upload(wide), stride, tokens, dim, group,
                    scope.upload(weight), EPS, bf16, DType.BF16);
            Parity.assertExact("gated_rms_norm, z in place", scope.download(strided, y.length),
                    scope.download(dense, y.length));
            assertRounded("gated_rms_norm", scope, dense, bf16, y.length);
        }
    }

    @ParameterizedTest(name = "tokens {0}, width {1}")
    @CsvSource({"1,5", "3,2048", "7,999"})
    void siluProductInBf16IsItsF32ResultRounded(int tokens, int width) {
        Random random = new Random(tokens * 5L + width);
        float[] stacked = Parity.uniform(random, 2 * tokens * width, -4, 4);
        try (DeviceScope scope = GpuFixture.scope()) {
            SiluMultiplyKernel kernel = new SiluMultiplyKernel(GpuFixture.kernels());
            DeviceBuffer f32 = scope.poisoned((long) tokens * width);
            DeviceBuffer bf16 = scope.poisoned(Math.ceilDiv(tokens * width, 2));
            kernel.launchStacked(scope.stream(), scope.upload(stacked), tokens, width, f32);
            kernel.launchStacked(scope.stream(), scope.upload(stacked), tokens, width, bf16, DType.BF16);
            assertRounded("silu_multiply", scope, f32, bf16, tokens * width);
        }
    }

    private static void assertRounded(String what, DeviceScope scope, DeviceBuffer f32, DeviceBuffer bf16, int count) {
        float[] full = scope.download(f32, count);
        scope.stream().synchronize();
        short[] bits = new short[count];
        bf16.slice(0, 2L * count).copyTo(bits);
        float[] expected = new float[count];
        float[] actual = new float[count];
        for (int i = 0; i < count; i++) {
            expected[i] = Matrix.bf16ToFloat(Matrix.floatToBf16(full[i]));
            actual[i] = Matrix.bf16ToFloat(bits[i]);
        }
        Parity.assertExact(what + " in bf16", actual, expected);
    }
}
