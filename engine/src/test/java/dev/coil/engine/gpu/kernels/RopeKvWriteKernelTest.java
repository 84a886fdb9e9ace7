package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.load.DType;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * RoPE on q and k and the K/V cache writes in one launch (rope_kv_write.cu) leave q, k and both
 * caches bit for bit as the four separate launches do (rope_f32 twice, paged_kv_write twice), with
 * partial rotary dims, zero-padded cache heads and no rotary at all.
 */
@GpuTest
class RopeKvWriteKernelTest {

    @ParameterizedTest(name = "{0} cache, head dim {1} in {2}, rotary {3}, {4} rows")
    @CsvSource({"BF16,64,64,64,1", "F32,64,64,32,3", "BF16,24,64,24,2", "F32,80,128,0,5", "BF16,128,128,64,4"})
    void oneLaunchEqualsTheFourItReplaces(DType dtype, int headDim, int paddedHeadDim, int rotaryDim, int rows) {
        int qHeads = 6;
        int kvHeads = 2;
        int blockSize = 16;
        int blocks = 4;
        float theta = 10000f;
        Random random = new Random(headDim * 7L + rotaryDim + rows + dtype.ordinal());
        float[] q = Parity.uniform(random, rows * qHeads * headDim, -2, 2);
        float[] k = Parity.uniform(random, rows * kvHeads * headDim, -2, 2);
        float[] v = Parity.uniform(random, rows * kvHeads * headDim, -2, 2);
        int[] positions = new int[rows];
        int[] destinations = new int[rows];
        for (int r = 0; r < rows; r++) {
            positions[r] = 3000 + 17 * r;
            destinations[r] = (3 - r % blocks) * blockSize + (5 * r) % blockSize;
        }
        long cacheFloats = (long) blocks * blockSize * kvHeads * paddedHeadDim * dtype.bytes() / 4;
        // Both caches start from the same values that are not zeros, so that the padded heads' zeros
        // and every other written element must come from the launch.
        float[] keysBefore = Parity.uniform(random, (int) cacheFloats, -1, 1);
        float[] valuesBefore = Parity.uniform(random, (int) cacheFloats, -1, 1);
        try (DeviceScope scope = GpuFixture.scope()) {
            PagedKvKernel kv = new PagedKvKernel(GpuFixture.kernels());
            RopeKernel rope = new RopeKernel(GpuFixture.kernels());
            DeviceBuffer positionBuffer = scope.upload(positions);
            DeviceBuffer destinationBuffer = scope.upload(destinations);

            DeviceBuffer separateQ = scope.upload(q);
            DeviceBuffer separateK = scope.upload(k);
            PagedAttentionKernel.DeviceCache separate = new PagedAttentionKernel.DeviceCache(
                    scope.upload(keysBefore), scope.upload(valuesBefore), dtype,
                    blocks, blockSize, kvHeads, paddedHeadDim);
            if (rotaryDim > 0) {
                rope.launchAtPositions(scope.stream(), separateQ, positionBuffer, rows, qHeads, headDim, rotaryDim,
                        theta);
                rope.launchAtPositions(scope.stream(), separateK, positionBuffer, rows, kvHeads, headDim, rotaryDim,
                        theta);
            }
            kv.write(scope.stream(), separateK, headDim, destinationBuffer, rows, separate.keys(), separate);
            kv.write(scope.stream(), scope.upload(v), headDim, destinationBuffer, rows, separate.values(), separate);

            DeviceBuffer fusedQ = scope.upload(q);
            DeviceBuffer fusedK = scope.upload(k);
            PagedAttentionKernel.DeviceCache fused = new PagedAttentionKernel.DeviceCache(
                    scope.upload(keysBefore), scope.upload(valuesBefore), dtype,
                    blocks, blockSize, kvHeads, paddedHeadDim);
            kv.ropeAndWrite(scope.stream(), fusedQ, qHeads, fusedK, scope.upload(v), headDim, rotaryDim, theta,
                    positionBuffer, destinationBuffer, rows, fused);

            Parity.assertExact("q", scope.download(fusedQ, q.length), scope.download(separateQ, q.length));
            Parity.assertExact("k", scope.download(fusedK, k.length), scope.download(separateK, k.length));
            Parity.assertExact("key cache", scope.download(fused.keys(), (int) cacheFloats),
                    scope.download(separate.keys(), (int) cacheFloats));
            Parity.assertExact("value cache", scope.download(fused.values(), (int) cacheFloats),
                    scope.download(separate.values(), (int) cacheFloats));
        }
    }
}
