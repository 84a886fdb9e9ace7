package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** RMSNorm and gated RMSNorm on the device against the double-precision reference. */
@GpuTest
class NormKernelsTest {

    private static final float EPS = 1e-5f;
    private static final double TOLERANCE = 2e-6;

    private final ReferenceOps reference = new ReferenceOps();

    @ParameterizedTest(name = "tokens {0}, dim {1}")
    @CsvSource({"1,1", "3,7", "5,1000", "2,4099", "17,2048"})
    void rmsNormMatchesReference(int tokens, int dim) {
        Random random = new Random(31L * tokens + dim);
        float[] x = Parity.uniform(random, tokens * dim, -3, 3);
        float[] weight = Parity.uniform(random, dim, 0.5, 1.5);
        float[] expected = new float[x.length];
        reference.rmsNorm(x, tokens, dim, weight, EPS, expected);

        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer out = scope.poisoned(x.length);
            new RmsNormKernel(GpuFixture.kernels()).launch(scope.stream(), scope.upload(x), tokens, dim,
                    scope.upload(weight), EPS, out);
            Parity.assertClose("rms_norm tokens " + tokens + " dim " + dim, scope.download(out, x.length), expected,
                    TOLERANCE);
        }
    }

    @Test
    void rmsNormWritesInPlace() {
        int tokens = 4;
        int dim = 777;
        Random random = new Random(5);
        float[] x = Parity.uniform(random, tokens * dim, -2, 2);
        float[] weight = Parity.uniform(random, dim, -1, 1);
        float[] expected = new float[x.length];
        reference.rmsNorm(x, tokens, dim, weight, EPS, expected);

        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer inPlace = scope.upload(x);
            new RmsNormKernel(GpuFixture.kernels()).launch(scope.stream(), inPlace, tokens, dim, scope.upload(weight),
                    EPS, inPlace);
            Parity.assertClose("rms_norm in place", scope.download(inPlace, x.length), expected, TOLERANCE);
        }
    }

    /** groupSize == dim is HF's whole-row MambaRMSNormGated; smaller groups are the grouped variant. */
    @ParameterizedTest(name = "tokens {0}, dim {1}, group {2}")
    @CsvSource({"1,5,5", "3,96,32", "5,1000,1000", "7,1542,771", "2,4096,512", "9,130,1", "2,6000,3000"})
    void gatedRmsNormMatchesReference(int tokens, int dim, int groupSize) {
        Random random = new Random(17L * tokens + dim + groupSize);
        float[] y = Parity.uniform(random, tokens * dim, -3, 3);
        float[] z = Parity.uniform(random, tokens * dim, -4, 4);
        float[] weight = Parity.uniform(random, dim, 0.5, 1.5);
        float[] expected = new float[y.length];
        reference.gatedRmsNorm(y, z, tokens, dim, groupSize, weight, EPS, expected);

        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer out = scope.poisoned(y.length);
            new GatedRmsNormKernel(GpuFixture.kernels()).launch(scope.stream(), scope.upload(y), scope.upload(z), tokens,
                    dim, groupSize, scope.upload(weight), EPS, out);
            Parity.assertClose("gated_rms_norm tokens " + tokens + " dim " + dim + " group " + groupSize,
                    scope.download(out, y.length), expected, TOLERANCE);

            DeviceBuffer inPlace = scope.upload(y);
            new GatedRmsNormKernel(GpuFixture.kernels()).launch(scope.stream(), inPlace, scope.upload(z), tokens, dim,
                    groupSize, scope.upload(weight), EPS, inPlace);
            Parity.assertClose("gated_rms_norm in place", scope.download(inPlace, y.length), expected, TOLERANCE);
        }
    }
}
