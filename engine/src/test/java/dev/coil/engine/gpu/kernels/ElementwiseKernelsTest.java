package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The residual update, the MLP activations and the f32 → 16-bit conversion against the Java the
 * CPU path runs (HybridModel's residual loop, FeedForward's silu product, Matrix.floatToBf16).
 */
@GpuTest
class ElementwiseKernelsTest {

    @ParameterizedTest(name = "{0} elements")
    @ValueSource(ints = {1, 31, 1000, 1_000_003})
    void residualAddEqualsTheCpuLoopBitForBit(int n) {
        Random random = new Random(n);
        float[] h = Parity.uniform(random, n, -5, 5);
        float[] update = Parity.uniform(random, n, -5, 5);
        float multiplier = 0.22f;
        float[] expected = h.clone();
        for (int i = 0; i < n; i++) {
            expected[i] += update[i] * multiplier;
        }

        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer stream = scope.upload(h);
            new ResidualAddKernel(GpuFixture.kernels()).launch(scope.stream(), stream, scope.upload(update), n,
                    multiplier);
            Parity.assertExact("residual_add " + n, scope.download(stream, n), expected);
        }
    }

    @Test
    void siluMultiplyMatchesTheCpuFormulaForSeparateAndStackedProjections() {
        int tokens = 5;
        int width = 1031;
        Random random = new Random(3);
        float[] gateAndUp = Parity.uniform(random, tokens * 2 * width, -6, 6);
        float[] expected = siluProducts(gateAndUp, tokens, width);
        float[] gate = new float[tokens * width];
        float[] up = new float[tokens * width];
        for (int t = 0; t < tokens; t++) {
            System.arraycopy(gateAndUp, t * 2 * width, gate, t * width, width);
            System.arraycopy(gateAndUp, t * 2 * width + width, up, t * width, width);
        }

        try (DeviceScope scope = GpuFixture.scope()) {
            SiluMultiplyKernel kernel = new SiluMultiplyKernel(GpuFixture.kernels());
            DeviceBuffer stacked = scope.poisoned(expected.length);
            kernel.launchStacked(scope.stream(), scope.upload(gateAndUp), tokens, width, stacked);
            Parity.assertClose("silu_multiply stacked", scope.download(stacked, expected.length), expected, 1e-6);

            DeviceBuffer separate = scope.poisoned(expected.length);
            kernel.launch(scope.stream(), scope.upload(gate), width, scope.upload(up), width, tokens, width, separate);
            Parity.assertClose("silu_multiply separate", scope.download(separate, expected.length), expected, 1e-6);
        }
    }

    /** silu(gate) · up by the CPU formula, rows of (gate | up) stacked as Granite stores them. */
    private static float[] siluProducts(float[] gateAndUp, int tokens, int width) {
        float[] expected = new float[tokens * width];
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < width; i++) {
                float g = gateAndUp[t * 2 * width + i];
                expected[t * width + i] = g / (1f + (float) Math.exp(-g)) * gateAndUp[t * 2 * width + width + i];
            }
        }
        return expected;
    }

    /** More rows than a grid's y dimension takes (65535): the launch strides over the rest. */
    @Test
    void siluMultiplyCoversMoreRowsThanOneGridSpans() {
        int tokens = 70_000;
        int width = 3;
        Random random = new Random(4);
        float[] gateAndUp = Parity.uniform(random, tokens * 2 * width, -6, 6);
        float[] expected = siluProducts(gateAndUp, tokens, width);
        try (DeviceScope scope = GpuFixture.scope()) {
            SiluMultiplyKernel kernel = new SiluMultiplyKernel(GpuFixture.kernels());
            DeviceBuffer out = scope.poisoned(expected.length);
            kernel.launchStacked(scope.stream(), scope.upload(gateAndUp), tokens, width, out);
            Parity.assertClose("silu_multiply, 70000 rows", scope.download(out, expected.length), expected, 1e-6);
        }
    }

    @Test
    void squaredReluEqualsTheCpuFormulaBitForBit() {
        int n = 4099;
        float[] x = Parity.uniform(new Random(9), n, -3, 3);
        float[] expected = new float[n];
        for (int i = 0; i < n; i++) {
            float r = Math.max(x[i], 0f);
            expected[i] = r * r;
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer out = scope.poisoned(n);
            new SquaredReluKernel(GpuFixture.kernels()).launch(scope.stream(), scope.upload(x), n, out);
            Parity.assertExact("squared_relu", scope.download(out, n), expected);
        }
    }

    @Test
    void conversionRoundsToNearestEvenAsTheCpuDoes() {
        int n = 10_007;
        Random random = new Random(21);
        float[] x = Parity.uniform(random, n, -300, 300);
        x[0] = 1.00390625f; // exactly halfway between two bf16 values: ties go to even
        x[1] = 65519.0f;   // rounds to the largest f16
        short[] bf16 = new short[n];
        short[] f16 = new short[n];
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer input = scope.upload(x);
            ConvertKernel convert = new ConvertKernel(GpuFixture.kernels());
            DeviceBuffer bf16Out = scope.poisoned((n + 1) / 2);
            DeviceBuffer f16Out = scope.poisoned((n + 1) / 2);
            convert.launch(scope.stream(), input, n, DType.BF16, bf16Out);
            convert.launch(scope.stream(), input, n, DType.F16, f16Out);
            scope.stream().synchronize();
            bf16Out.copyTo(bf16);
            f16Out.copyTo(f16);
        }
        float[] actualBf16 = new float[n];
        float[] expectedBf16 = new float[n];
        float[] actualF16 = new float[n];
        float[] expectedF16 = new float[n];
        for (int i = 0; i < n; i++) {
            actualBf16[i] = Matrix.bf16ToFloat(bf16[i]);
            expectedBf16[i] = Matrix.bf16ToFloat(Matrix.floatToBf16(x[i]));
            actualF16[i] = Float.float16ToFloat(f16[i]);
            expectedF16[i] = Float.float16ToFloat(Float.floatToFloat16(x[i]));
        }
        Parity.assertExact("f32_to_bf16", actualBf16, expectedBf16);
        Parity.assertExact("f32_to_f16", actualF16, expectedF16);
    }
}
