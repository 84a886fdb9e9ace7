package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.TestMatrices;
import dev.coil.engine.load.DType;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The routed experts' norm and router in one launch (routed_experts_router.cu): the updated residual
 * stream and the normed rows bit for bit as the separate norm launch gives them, the router's scores
 * against a double-precision product of those normed rows, h left as it was.
 */
@GpuTest
class ExpertsRouterKernelTest {

    @ParameterizedTest(name = "rows {0}, hidden {1}, experts {2}, {3}, update {4}")
    @CsvSource({
        "1,1536,64,BF16,true", "3,2688,128,BF16,true", "2,1537,12,F32,true", "1,64,5,F32,false",
        "4,1000,9,BF16,true", "2,2048,256,BF16,false", "1,4096,16,BF16,true", "2,3500,7,F32,false"
    })
    void theNormIsTheSeparateLaunchsAndTheScoresItsProductWithTheRouter(int rows, int hidden, int experts,
            DType dtype, boolean withUpdate) {
        Random random = new Random(rows * 7919L + hidden * 31L + experts);
        float[] h = Parity.uniform(random, rows * hidden, -3, 3);
        float[] update = Parity.uniform(random, rows * hidden, -2, 2);
        float[] normWeight = Parity.uniform(random, hidden, 0.5, 1.5);
        float[] router = Parity.uniform(random, experts * hidden, -0.1, 0.1);
        float multiplier = 0.75f;
        float eps = 1e-5f;
        try (DeviceScope scope = GpuFixture.scope()) {
            ExpertsRouterKernel kernel = new ExpertsRouterKernel(GpuFixture.kernels());
            DeviceBuffer weight = scope.upload(normWeight);
            DeviceBuffer updateDevice = withUpdate ? scope.upload(update) : null;
            // The separate launch: h updated in place, the normed rows in f32.
            DeviceBuffer separateH = scope.upload(h);
            DeviceBuffer separateNormed = scope.poisoned((long) rows * hidden);
            RmsNormKernel norm = new RmsNormKernel(GpuFixture.kernels());
            if (withUpdate) {
                norm.launchAfterResidual(scope.stream(), separateH, updateDevice, multiplier, rows, hidden, weight, eps,
                        separateNormed, DType.F32);
            } else {
                norm.launch(scope.stream(), separateH, rows, hidden, weight, eps, separateNormed);
            }

            DeviceBuffer hDevice = scope.upload(h);
            DeviceBuffer hOut = scope.poisoned((long) rows * hidden);
            DeviceBuffer normed = scope.poisoned((long) rows * hidden);
            DeviceBuffer scores = scope.poisoned((long) rows * experts);
            DeviceMatrix routerDevice = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(router, experts, hidden, dtype)));
            kernel.launch(scope.stream(), hDevice, updateDevice, multiplier, weight, eps, rows, hidden, hOut, normed,
                    routerDevice, scores);

            String what = rows + " rows of " + hidden + ", " + experts + " experts, " + dtype;
            Parity.assertExact("updated residual stream, " + what, scope.download(hOut, rows * hidden),
                    scope.download(separateH, rows * hidden));
            float[] normedRows = scope.download(normed, rows * hidden);
            Parity.assertExact("normed rows, " + what, normedRows, scope.download(separateNormed, rows * hidden));
            Parity.assertExact("h left as it was, " + what, scope.download(hDevice, rows * hidden), h);

            float[] held = TestMatrices.widened(router, dtype);
            float[] expected = new float[rows * experts];
            for (int r = 0; r < rows; r++) {
                for (int e = 0; e < experts; e++) {
                    expected[r * experts + e] = (float) TestMatrices.dot(normedRows, r * hidden, held, e * hidden,
                            hidden);
                }
            }
            Parity.assertClose("router scores, " + what, scope.download(scores, rows * experts), expected, 1e-5);
        }
    }

    @Test
    void rowsBeyondItsSharedMemoryAndAnOutputOverHAreRefused() {
        assertThat(ExpertsRouterKernel.supports(8, 1536)).isTrue();
        assertThat(ExpertsRouterKernel.supports(8, 2688)).isFalse();
        assertThat(ExpertsRouterKernel.supports(0, 1536)).isFalse();
        try (DeviceScope scope = GpuFixture.scope()) {
            ExpertsRouterKernel kernel = new ExpertsRouterKernel(GpuFixture.kernels());
            DeviceBuffer buffer = scope.poisoned(8L * 2688);
            DeviceMatrix router = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(new float[4 * 2688], 4, 2688, DType.BF16)));
            assertThatThrownBy(() -> kernel.launch(scope.stream(), buffer, null, 1f, buffer, 1e-5f, 8, 2688,
                    scope.poisoned(8L * 2688), buffer, router, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("shared memory");
            assertThatThrownBy(() -> kernel.launch(scope.stream(), buffer, null, 1f, buffer, 1e-5f, 1, 2688, buffer,
                    scope.poisoned(2688), router, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("hOut must not be h");
            assertThatThrownBy(() -> kernel.launch(scope.stream(), buffer, null, 1f, buffer, 1e-5f, 1, 2000,
                    scope.poisoned(2688), buffer, router, buffer))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("for hidden 2000");
        }
    }
}
