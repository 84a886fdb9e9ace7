package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.PagedKeyValues;
import dev.coil.engine.ref.ReferenceOps;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Paged decode attention on the device against {@code ReferenceOps.pagedAttention} per sequence,
 * over one host {@link PagedKeyValues} copied to the device as it is: a batch of sequences of
 * different lengths, block tables shuffled through the pool (unused entries -1, so a read past a
 * sequence's blocks faults), bf16 and f32 caches, GQA ratios 1 to 16, block sizes 16, 7 and 1,
 * one split or many (including splits past a sequence's end, which the merge must skip).
 * The kernel computes in f32 from the same cached values, so the tolerance is f32's.
 */
@GpuTest
class PagedAttentionKernelTest {

    private static final double TOLERANCE = 1e-4;

    private final ReferenceOps reference = new ReferenceOps();

    /** partition 0: the kernel's own plan. */
    @ParameterizedTest(name = "{0} cache, heads {1}/{2}, head dim {3}, block size {4}, lengths {5}, max {6}, partition {7}")
    @CsvSource({
        "BF16,8,8,64,16,1 17 300 2500 64,2600,0",
        "BF16,8,4,128,16,1 17 300 2500 64,2500,0",
        "F32,8,2,128,16,5 1000 33,1200,0",
        "BF16,16,4,128,1,700 2 1500,1500,0",
        "F32,4,1,64,16,1 17 300 2500 64,3000,64",
        "BF16,12,4,128,16,129 3100 7,3200,32",
        "BF16,32,2,64,7,100 1 999,1000,100",
        "F32,32,8,128,1,333 2048,2048,512",
        "BF16,8,1,128,16,1 5 200 512,512,512",
        "F32,16,2,64,16,1 5 200 512,512,512"
    })
    void decodeMatchesTheReference(DType dtype, int queryHeads, int kvHeads, int headDim, int blockSize,
            String lengthList, int maxLength, int partition) {
        AttentionShape shape = new AttentionShape(queryHeads, kvHeads, headDim);
        int[] lengths = Arrays.stream(lengthList.split(" ")).mapToInt(Integer::parseInt).toArray();
        int batch = lengths.length;
        Random random = new Random(Arrays.hashCode(lengths) * 31L + queryHeads * 7L + kvHeads + headDim + blockSize);
        int tableStride = (maxLength + blockSize - 1) / blockSize;
        int blocks = Arrays.stream(lengths).map(length -> (length + blockSize - 1) / blockSize).sum() + 3;
        List<Integer> pool = new ArrayList<>();
        for (int block = 0; block < blocks; block++) {
            pool.add(block);
        }
        Collections.shuffle(pool, random);

        int queryWidth = queryHeads * headDim;
        int keyWidth = kvHeads * headDim;
        float scale = (float) (1 / Math.sqrt(headDim));
        int[] tables = new int[batch * tableStride];
        Arrays.fill(tables, -1);
        float[] q = Parity.uniform(random, batch * queryWidth, -4, 4);
        float[] expected = new float[batch * queryWidth];
        try (Arena arena = Arena.ofConfined(); DeviceScope scope = GpuFixture.scope()) {
            PagedKeyValues cache = new PagedKeyValues(arena, dtype, blocks, blockSize, kvHeads, headDim);
            int next = 0;
            for (int b = 0; b < batch; b++) {
                int[] table = new int[(lengths[b] + blockSize - 1) / blockSize];
                for (int i = 0; i < table.length; i++) {
                    table[i] = pool.get(next++);
                }
                System.arraycopy(table, 0, tables, b * tableStride, table.length);
                cache.write(table, 0, lengths[b], Parity.uniform(random, lengths[b] * keyWidth, -1, 1),
                        Parity.uniform(random, lengths[b] * keyWidth, -1, 1));
                float[] out = new float[queryWidth];
                reference.pagedAttention(shape, 1, lengths[b] - 1, scale,
                        Arrays.copyOfRange(q, b * queryWidth, (b + 1) * queryWidth), cache, table, out);
                System.arraycopy(out, 0, expected, b * queryWidth, queryWidth);
            }

            CudaDevice device = GpuFixture.device();
            DeviceBuffer keys = scope.keep(device.allocate(cache.keys().byteSize()));
            DeviceBuffer values = scope.keep(device.allocate(cache.values().byteSize()));
            keys.copyFrom(cache.keys());
            values.copyFrom(cache.values());
            PagedAttentionKernel.DeviceCache deviceCache = new PagedAttentionKernel.DeviceCache(keys, values, dtype,
                    blocks, blockSize, kvHeads, headDim);

            PagedAttentionKernel kernel = new PagedAttentionKernel(GpuFixture.kernels(), device.multiprocessors());
            PagedAttentionKernel.Split split = partition == 0 ? kernel.plan(shape, batch, maxLength)
                    : PagedAttentionKernel.split(shape, batch, maxLength, partition);
            DeviceBuffer workspace = scope.poisoned(Math.max(1, split.workspaceFloats()));
            DeviceBuffer out = scope.poisoned(expected.length);
            kernel.launch(scope.stream(), split, shape, batch, maxLength, scale, scope.upload(q), deviceCache,
                    scope.upload(tables), tableStride, scope.upload(lengths), workspace, out);
            String what = dtype + " paged attention heads " + queryHeads + "/" + kvHeads + " dim " + headDim
                    + " block " + blockSize + " lengths " + lengthList + " (" + split + ")";
            Parity.assertClose(what, scope.download(out, expected.length), expected, TOLERANCE);
        }
    }
}
