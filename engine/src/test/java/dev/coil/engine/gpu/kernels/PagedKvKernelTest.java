package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

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
 * Rows written into a paged cache land in the blocks a table names, zero-padded to the cache's
 * head dim, and a gather reads a sequence's positions back in order, in bf16.
 */
@GpuTest
class PagedKvKernelTest {

    @ParameterizedTest(name = "{0}, head dim {1} in {2}")
    @CsvSource({"F32,64,64", "BF16,64,64", "F32,24,64", "BF16,80,128"})
    void writtenRowsGatherBackInPositionOrder(DType dtype, int headDim, int paddedHeadDim) {
        int kvHeads = 3;
        int blockSize = 16;
        int blocks = 7;
        int positions = 37; // three blocks, the last partly filled
        int[] table = {5, 0, 3};
        Random random = new Random(headDim * 31L + dtype.ordinal());
        float[] rows = Parity.uniform(random, positions * kvHeads * headDim, -2, 2);
        int[] destinations = new int[positions];
        for (int p = 0; p < positions; p++) {
            destinations[p] = table[p / blockSize] * blockSize + p % blockSize;
        }
        int width = kvHeads * paddedHeadDim;
        long cacheFloats = (long) blocks * blockSize * width * dtype.bytes() / 4;
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer keys = scope.poisoned(cacheFloats);
            PagedAttentionKernel.DeviceCache cache = new PagedAttentionKernel.DeviceCache(keys, scope.poisoned(
                    cacheFloats), dtype, blocks, blockSize, kvHeads, paddedHeadDim);
            PagedKvKernel kernel = new PagedKvKernel(GpuFixture.kernels());
            kernel.write(scope.stream(), scope.upload(rows), headDim, scope.upload(destinations), positions, keys,
                    cache);
            DeviceBuffer gathered = scope.poisoned(Math.ceilDiv(positions * width, 2));
            kernel.gather(scope.stream(), keys, cache, scope.upload(table), positions, gathered);
            scope.stream().synchronize();
            short[] bits = new short[positions * width];
            gathered.slice(0, 2L * bits.length).copyTo(bits);

            float[] actual = new float[bits.length];
            float[] expected = new float[bits.length];
            for (int p = 0; p < positions; p++) {
                for (int h = 0; h < kvHeads; h++) {
                    for (int d = 0; d < paddedHeadDim; d++) {
                        int index = (p * kvHeads + h) * paddedHeadDim + d;
                        float value = d < headDim ? rows[(p * kvHeads + h) * headDim + d] : 0f;
                        expected[index] = Matrix.bf16ToFloat(Matrix.floatToBf16(value));
                        actual[index] = Matrix.bf16ToFloat(bits[index]);
                    }
                }
            }
            Parity.assertExact("paged write + gather, " + dtype, actual, expected);
            assertThat(actual).doesNotContain(Float.NaN);
        }
    }
}
