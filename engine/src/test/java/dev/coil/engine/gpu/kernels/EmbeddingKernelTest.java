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
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The embedding lookup equals the CPU path's: Matrix.readRow, then h *= multiplier in f32. */
@GpuTest
class EmbeddingKernelTest {

    @ParameterizedTest(name = "{0}, multiplier {1}")
    @CsvSource({"BF16,1.0", "BF16,12.0", "F16,0.5", "F32,1.0", "F32,3.3"})
    void gathersRowsExactlyAsTheCpu(DType dtype, float multiplier) {
        int vocab = 1001;
        int hidden = 257;
        Random random = new Random(dtype.ordinal() * 13L + (long) multiplier);
        Matrix table = TestMatrices.of(Parity.uniform(random, vocab * hidden, -1, 1), vocab, hidden, dtype);
        int[] ids = {0, vocab - 1, 5, 5, 734, 2, 999};
        float[] expected = new float[ids.length * hidden];
        for (int t = 0; t < ids.length; t++) {
            table.readRow(ids[t], expected, t * hidden);
        }
        if (multiplier != 1f) {
            for (int i = 0; i < expected.length; i++) {
                expected[i] *= multiplier;
            }
        }

        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix deviceTable = scope.keep(DeviceMatrix.upload(GpuFixture.device(), table));
            DeviceBuffer out = scope.poisoned(expected.length);
            new EmbeddingKernel(GpuFixture.kernels()).launch(scope.stream(), scope.upload(ids), ids.length, deviceTable,
                    multiplier, out);
            Parity.assertExact("embedding " + dtype + " × " + multiplier, scope.download(out, expected.length),
                    expected);
        }
    }

    @ParameterizedTest(name = "id {0}")
    @CsvSource({"-1", "1001", "2147483647"})
    void anIdOutsideTheVocabularyGivesANanRowAndReadsNothingElse(int badId) {
        int vocab = 1001;
        int hidden = 64;
        Matrix table = TestMatrices.of(Parity.uniform(new Random(1), vocab * hidden, -1, 1), vocab, hidden, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix deviceTable = scope.keep(DeviceMatrix.upload(GpuFixture.device(), table));
            // Filled with 7s, not NaN: the bad row must be written NaN, not left alone.
            DeviceBuffer out = scope.poisoned(2L * hidden);
            out.fill(Float.floatToRawIntBits(7f));
            new EmbeddingKernel(GpuFixture.kernels()).launch(scope.stream(), scope.upload(new int[] {3, badId}), 2,
                    deviceTable, 1f, out);
            float[] rows = scope.download(out, 2 * hidden);
            float[] expectedFirst = new float[hidden];
            table.readRow(3, expectedFirst, 0);
            for (int i = 0; i < hidden; i++) {
                assertThat(rows[i]).isEqualTo(expectedFirst[i]);
                assertThat(rows[hidden + i]).isNaN();
            }
        }
    }
}
