package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Rotate-half RoPE on the device against the reference: whole and partial rotary dims, positions
 * from 0 and deep into a long context, and per-row positions of a decode batch.
 */
@GpuTest
class RopeKernelTest {

    /** Both sides round the angle to f32 the same way; only the last bits of cos/sin may differ. */
    private static final double TOLERANCE = 1e-6;

    private final ReferenceOps reference = new ReferenceOps();

    @ParameterizedTest(name = "tokens {0}, heads {1}, headDim {2}, rotary {3}, theta {4}, from {5}")
    @CsvSource({
        "1,1,2,2,10000,3",
        "5,3,10,10,10000,0",
        "5,3,10,6,10000,7",
        "7,4,64,64,10000,4097",
        "3,2,128,32,1000000,65530",
        "9,5,80,40,500000,123"
    })
    void matchesReference(int tokens, int heads, int headDim, int rotaryDim, float theta, int firstPosition) {
        Random random = new Random(7L * tokens + heads + headDim + rotaryDim + firstPosition);
        float[] x = Parity.uniform(random, tokens * heads * headDim, -2, 2);
        float[] expected = x.clone();
        reference.rope(expected, tokens, heads, headDim, rotaryDim, theta, firstPosition);

        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer rotated = scope.upload(x);
            new RopeKernel(GpuFixture.kernels()).launch(scope.stream(), rotated, tokens, heads, headDim, rotaryDim,
                    theta, firstPosition);
            float[] actual = scope.download(rotated, x.length);
            Parity.assertClose("rope tokens " + tokens + " heads " + heads + " headDim " + headDim + " rotary "
                    + rotaryDim + " from " + firstPosition, actual, expected, TOLERANCE);
            assertPassThroughUnchanged(actual, x, tokens * heads, headDim, rotaryDim);
        }
    }

    @Test
    void rowsOfABatchRotateAtTheirOwnPositions() {
        int heads = 3;
        int headDim = 12;
        int rotaryDim = 8;
        int[] positions = {0, 4096, 17, 1, 300000};
        int tokens = positions.length;
        int row = heads * headDim;
        Random random = new Random(11);
        float[] x = Parity.uniform(random, tokens * row, -2, 2);
        float[] expected = x.clone();
        for (int t = 0; t < tokens; t++) {
            float[] single = Arrays.copyOfRange(expected, t * row, (t + 1) * row);
            reference.rope(single, 1, heads, headDim, rotaryDim, 10000f, positions[t]);
            System.arraycopy(single, 0, expected, t * row, row);
        }

        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer rotated = scope.upload(x);
            new RopeKernel(GpuFixture.kernels()).launchAtPositions(scope.stream(), rotated, scope.upload(positions),
                    tokens, heads, headDim, rotaryDim, 10000f);
            Parity.assertClose("rope at per-row positions", scope.download(rotated, x.length), expected, TOLERANCE);
        }
    }

    /** Dims past rotaryDim are not rotary: they must come back bit for bit. */
    private static void assertPassThroughUnchanged(float[] actual, float[] input, int rows, int headDim,
            int rotaryDim) {
        for (int r = 0; r < rows; r++) {
            for (int d = rotaryDim; d < headDim; d++) {
                int i = r * headDim + d;
                if (Float.floatToRawIntBits(actual[i]) != Float.floatToRawIntBits(input[i])) {
                    throw new AssertionError("rope changed non-rotary dim " + d + " of row " + r + ": " + input[i]
                            + " became " + actual[i]);
                }
            }
        }
    }
}
