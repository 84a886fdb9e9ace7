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
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * One decode row's q/k/v launch ending in RoPE and the K/V cache write (gemv.cu's RoPE epilogue)
 * against the launch without it followed by rope_kv_write: q, k, v and both caches bit for bit,
 * with full, partial and no rotary dims, both cache types, GQA, and the first block's pre-norm
 * (no residual update) as well as a later one's. The cache holds other rows before, which must stay.
 */
@GpuTest
class GemvRopeWriteTest {

    @ParameterizedTest(name = "{0} cache, {1} q heads / {2} kv heads of {3}, rotary {4}, hidden {5}, update {6}")
    @CsvSource({
        "BF16,12,4,64,64,768,true",
        "F32,12,4,64,64,768,false",
        "BF16,6,2,128,64,512,true",
        "F32,4,4,64,32,256,true",
        "BF16,8,2,64,0,264,true",
        "F32,2,1,128,128,136,false"
    })
    void equalsTheLaunchThenRopeKvWrite(DType cacheType, int queryHeads, int kvHeads, int headDim, int rotaryDim,
            int hidden, boolean withUpdate) {
        int blockSize = 16;
        int blocks = 3;
        int position = 1234;
        int destination = 21;
        float theta = 10000f;
        float multiplier = 0.6f;
        float eps = 1e-5f;
        Random random = new Random(queryHeads * 31L + headDim + rotaryDim + hidden);
        var query = TestMatrices.of(Parity.uniform(random, queryHeads * headDim * hidden, -0.1, 0.1),
                queryHeads * headDim, hidden, DType.BF16);
        var key = TestMatrices.of(Parity.uniform(random, kvHeads * headDim * hidden, -0.1, 0.1), kvHeads * headDim,
                hidden, DType.BF16);
        var value = TestMatrices.of(Parity.uniform(random, kvHeads * headDim * hidden, -0.1, 0.1), kvHeads * headDim,
                hidden, DType.BF16);
        float[] h = Parity.uniform(random, hidden, -2, 2);
        float[] update = Parity.uniform(random, hidden, -1, 1);
        float[] norm = Parity.uniform(random, hidden, 0.5, 1.5);
        int cacheValues = blocks * blockSize * kvHeads * headDim;
        float[] cacheBefore = Parity.uniform(random, cacheValues * cacheType.bytes() / 4, -1, 1);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
            PagedKvKernel kv = new PagedKvKernel(GpuFixture.kernels());
            DeviceMatrix q = scope.keep(DeviceMatrix.upload(GpuFixture.device(), query));
            DeviceMatrix k = scope.keep(DeviceMatrix.upload(GpuFixture.device(), key));
            DeviceMatrix v = scope.keep(DeviceMatrix.upload(GpuFixture.device(), value));
            assertThat(gemv.takesRopeWrite(q, k, v, headDim, rotaryDim)).as("the launch takes this shape").isTrue();
            DeviceBuffer hDevice = scope.upload(h);
            DeviceBuffer updateDevice = withUpdate ? scope.upload(update) : null;
            DeviceBuffer normDevice = scope.upload(norm);
            DeviceBuffer positions = scope.upload(new int[] {position});
            DeviceBuffer destinations = scope.upload(new int[] {destination});
            int qWidth = queryHeads * headDim;
            int kvWidth = kvHeads * headDim;

            DeviceBuffer separateQ = scope.poisoned(qWidth);
            DeviceBuffer separateK = scope.poisoned(kvWidth);
            DeviceBuffer separateV = scope.poisoned(kvWidth);
            DeviceBuffer separateH = withUpdate ? scope.poisoned(hidden) : null;
            PagedAttentionKernel.DeviceCache separate = new PagedAttentionKernel.DeviceCache(scope.upload(cacheBefore),
                    scope.upload(cacheBefore), cacheType, blocks, blockSize, kvHeads, headDim);
            gemv.projectResidualNorm(scope.stream(), new GemvKernel.ResidualNorm(hDevice, updateDevice, multiplier,
                    separateH, normDevice, eps), 1, List.of(new GemvKernel.Product(q, separateQ),
                    new GemvKernel.Product(k, separateK), new GemvKernel.Product(v, separateV)));
            kv.ropeAndWrite(scope.stream(), separateQ, queryHeads, separateK, separateV, headDim, rotaryDim, theta,
                    positions, destinations, 1, separate);

            DeviceBuffer fusedQ = scope.poisoned(qWidth);
            DeviceBuffer fusedK = scope.poisoned(kvWidth);
            DeviceBuffer fusedV = scope.poisoned(kvWidth);
            DeviceBuffer fusedH = withUpdate ? scope.poisoned(hidden) : null;
            PagedAttentionKernel.DeviceCache fused = new PagedAttentionKernel.DeviceCache(scope.upload(cacheBefore),
                    scope.upload(cacheBefore), cacheType, blocks, blockSize, kvHeads, headDim);
            gemv.projectResidualNorm(scope.stream(), new GemvKernel.ResidualNorm(hDevice, updateDevice, multiplier,
                    fusedH, normDevice, eps), List.of(new GemvKernel.Product(q, fusedQ),
                    new GemvKernel.Product(k, fusedK), new GemvKernel.Product(v, fusedV)),
                    new GemvKernel.RopeWrite(positions, destinations, fused.keys(), fused.values(), cacheType, headDim,
                            rotaryDim, theta));

            Parity.assertExact("q", scope.download(fusedQ, qWidth), scope.download(separateQ, qWidth));
            Parity.assertExact("k", scope.download(fusedK, kvWidth), scope.download(separateK, kvWidth));
            Parity.assertExact("v", scope.download(fusedV, kvWidth), scope.download(separateV, kvWidth));
            if (withUpdate) {
                Parity.assertExact("residual stream", scope.download(fusedH, hidden), scope.download(separateH, hidden));
            }
            int cacheFloats = cacheBefore.length;
            Parity.assertExact("key cache", scope.download(fused.keys(), cacheFloats),
                    scope.download(separate.keys(), cacheFloats));
            Parity.assertExact("value cache", scope.download(fused.values(), cacheFloats),
                    scope.download(separate.values(), cacheFloats));
        }
    }
}
