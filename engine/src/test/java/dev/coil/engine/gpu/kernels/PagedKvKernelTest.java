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

    /**
     * Several sequences' positions gathered in one launch, each through its own table found at its
     * table start, equal one gather a sequence bit for bit, one sequence after another.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"F32", "BF16"})
    void packedGatherEqualsOneGatherASequence(DType dtype) {
        int kvHeads = 2;
        int headDim = 64;
        int blockSize = 16;
        int blocks = 9;
        int width = kvHeads * headDim;
        int[] counts = {37, 1, 16, 0, 50};
        // The tables inside one int array, at scattered starts.
        int[] tables = {-1, 5, 0, 3, -1, 7, -1, 1, 2, 8, -1, 4, 6, 2, 0};
        int[] tableStarts = {1, 5, 7, 10, 11};
        int[] starts = Packing.starts(counts);
        int rows = starts[counts.length];
        long cacheFloats = (long) blocks * blockSize * width * dtype.bytes() / 4;
        Random random = new Random(dtype.ordinal() + 3L);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer keys = scope.upload(Parity.uniform(random, (int) cacheFloats, -2, 2));
            PagedAttentionKernel.DeviceCache cache = new PagedAttentionKernel.DeviceCache(keys, keys, dtype, blocks,
                    blockSize, kvHeads, headDim);
            PagedKvKernel kernel = new PagedKvKernel(GpuFixture.kernels());
            DeviceBuffer deviceTables = scope.upload(tables);
            DeviceBuffer alone = scope.poisoned((long) rows * width / 2);
            for (int z = 0; z < counts.length; z++) {
                kernel.gather(scope.stream(), keys, cache, deviceTables.floatSlice(tableStarts[z],
                        Math.max(1, Math.ceilDiv(counts[z], blockSize))), counts[z],
                        alone.slice(2L * starts[z] * width, 2L * counts[z] * width));
            }
            DeviceBuffer packed = scope.poisoned((long) rows * width / 2);
            kernel.gatherPacked(scope.stream(), keys, cache, new PackedKeys(counts, scope.upload(starts), deviceTables,
                    scope.upload(tableStarts)), packed);
            Parity.assertExact("paged gather packed, " + dtype + ", against one gather a sequence",
                    scope.download(packed, rows * width / 2), scope.download(alone, rows * width / 2));
        }
    }
}
