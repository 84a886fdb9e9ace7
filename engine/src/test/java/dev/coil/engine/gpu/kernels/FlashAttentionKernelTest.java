package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.kernels.AttentionInputs.Bf16;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Flash attention on the device against {@code ReferenceOps.attention} (double precision, the
 * full score row) on the same bf16-rounded operands, for every compiled tile shape: token counts
 * that are not multiples of any tile, cached positions before them, GQA ratios 1 to 4, batches.
 * The only rounding the reference lacks is P's to bf16 before P V: about 1e-3 of the output.
 */
@GpuTest
class FlashAttentionKernelTest {

    private static final double ELEMENT_TOLERANCE = 2e-2;
    private static final double NORM_TOLERANCE = 1e-2;

    private final ReferenceOps reference = new ReferenceOps();

    @ParameterizedTest(name = "heads {0}/{1}, head dim {2}, batch {3}, tokens {4}, past {5}")
    @CsvSource({
        "1,1,64,1,1,0",
        "4,4,64,1,37,0",
        "8,4,128,1,130,19",
        "8,2,64,2,77,200",
        "8,2,128,3,200,0",
        "12,3,128,1,300,700",
        "16,4,64,1,129,1000",
        "2,2,128,1,1,2047",
        "4,1,128,2,513,64"
    })
    void causalMatchesTheReference(int queryHeads, int kvHeads, int headDim, int batch, int tokens, int past) {
        AttentionShape shape = new AttentionShape(queryHeads, kvHeads, headDim);
        Random random = new Random(queryHeads * 1009L + kvHeads * 101L + headDim + batch * 7L + tokens * 13L + past);
        int keys = past + tokens;
        int queryWidth = queryHeads * headDim;
        int keyWidth = kvHeads * headDim;
        // Queries larger than keys so that some rows' softmax is peaked, others flat.
        Bf16 q = Bf16.uniform(random, batch * tokens * queryWidth, 4);
        Bf16 k = Bf16.uniform(random, batch * keys * keyWidth, 1);
        Bf16 v = Bf16.uniform(random, batch * keys * keyWidth, 1);
        float scale = (float) (1 / Math.sqrt(headDim));
        float[] expected = new float[batch * tokens * queryWidth];
        for (int b = 0; b < batch; b++) {
            float[] out = new float[tokens * queryWidth];
            reference.attention(shape, tokens, past, scale, slice(q.values(), b, tokens * queryWidth),
                    slice(k.values(), b, keys * keyWidth), slice(v.values(), b, keys * keyWidth), out);
            System.arraycopy(out, 0, expected, b * tokens * queryWidth, out.length);
        }

        FlashAttentionKernel kernel = new FlashAttentionKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer deviceQ = q.upload(scope);
            DeviceBuffer deviceK = k.upload(scope);
            DeviceBuffer deviceV = v.upload(scope);
            for (FlashAttentionKernel.Tile tile : FlashAttentionKernel.tiles(headDim)) {
                DeviceBuffer out = scope.poisoned(expected.length);
                kernel.launch(scope.stream(), tile, shape, batch, tokens, past, scale, true, deviceQ, deviceK, deviceV,
                        out);
                String what = tile.kernelName() + " heads " + queryHeads + "/" + kvHeads + " batch " + batch
                        + " tokens " + tokens + " past " + past;
                float[] actual = scope.download(out, expected.length);
                Parity.assertClose(what, actual, expected, ELEMENT_TOLERANCE);
                AttentionInputs.assertRelativeNorm(what, actual, expected, NORM_TOLERANCE);
            }
        }
    }

    @ParameterizedTest(name = "heads {0}/{1}, head dim {2}, tokens {3}, past {4}")
    @CsvSource({"4,2,64,70,0", "8,2,128,33,100", "4,4,128,257,0"})
    void bidirectionalSeesEveryKey(int queryHeads, int kvHeads, int headDim, int tokens, int past) {
        AttentionShape shape = new AttentionShape(queryHeads, kvHeads, headDim);
        Random random = new Random(tokens * 31L + past + headDim);
        int keys = past + tokens;
        Bf16 q = Bf16.uniform(random, tokens * queryHeads * headDim, 4);
        Bf16 k = Bf16.uniform(random, keys * kvHeads * headDim, 1);
        Bf16 v = Bf16.uniform(random, keys * kvHeads * headDim, 1);
        float scale = (float) (1 / Math.sqrt(headDim));
        float[] expected = bidirectional(shape, tokens, keys, scale, q.values(), k.values(), v.values());

        FlashAttentionKernel kernel = new FlashAttentionKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer deviceQ = q.upload(scope);
            DeviceBuffer deviceK = k.upload(scope);
            DeviceBuffer deviceV = v.upload(scope);
            for (FlashAttentionKernel.Tile tile : FlashAttentionKernel.tiles(headDim)) {
                DeviceBuffer out = scope.poisoned(expected.length);
                kernel.launch(scope.stream(), tile, shape, 1, tokens, past, scale, false, deviceQ, deviceK, deviceV,
                        out);
                String what = tile.kernelName() + " bidirectional tokens " + tokens + " past " + past;
                float[] actual = scope.download(out, expected.length);
                Parity.assertClose(what, actual, expected, ELEMENT_TOLERANCE);
                AttentionInputs.assertRelativeNorm(what, actual, expected, NORM_TOLERANCE);
            }
        }
    }

    /**
     * Prompt chunks of different lengths and pasts packed in rows, in one launch, equal one launch
     * a chunk bit for bit (chunks longer than a row block, shorter ones whose extra row blocks
     * return at once, a chunk of one token, a chunk with no past).
     */
    @ParameterizedTest(name = "heads {0}/{1}, head dim {2}")
    @CsvSource({"12,4,64", "8,2,128"})
    void packedChunksEqualOneLaunchEach(int queryHeads, int kvHeads, int headDim) {
        AttentionShape shape = new AttentionShape(queryHeads, kvHeads, headDim);
        int[] tokens = {37, 1, 200, 129};
        int[] pasts = {0, 70, 19, 300};
        int chunks = tokens.length;
        int[] keyCounts = new int[chunks];
        for (int z = 0; z < chunks; z++) {
            keyCounts[z] = pasts[z] + tokens[z];
        }
        int[] queryStarts = Packing.starts(tokens);
        int[] keyStarts = Packing.starts(keyCounts);
        int queryWidth = queryHeads * headDim;
        int keyWidth = kvHeads * headDim;
        Random random = new Random(queryHeads * 31L + headDim);
        Bf16 q = Bf16.uniform(random, queryStarts[chunks] * queryWidth, 4);
        Bf16 k = Bf16.uniform(random, keyStarts[chunks] * keyWidth, 1);
        Bf16 v = Bf16.uniform(random, keyStarts[chunks] * keyWidth, 1);
        float scale = (float) (1 / Math.sqrt(headDim));
        FlashAttentionKernel kernel = new FlashAttentionKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer deviceQ = q.upload(scope);
            DeviceBuffer deviceK = k.upload(scope);
            DeviceBuffer deviceV = v.upload(scope);
            int rows = queryStarts[chunks];
            DeviceBuffer alone = scope.poisoned((long) rows * queryWidth);
            for (int z = 0; z < chunks; z++) {
                kernel.launch(scope.stream(), shape, 1, tokens[z], pasts[z], scale,
                        deviceQ.slice(2L * queryStarts[z] * queryWidth, 2L * tokens[z] * queryWidth),
                        deviceK.slice(2L * keyStarts[z] * keyWidth, 2L * keyCounts[z] * keyWidth),
                        deviceV.slice(2L * keyStarts[z] * keyWidth, 2L * keyCounts[z] * keyWidth),
                        alone.floatSlice((long) queryStarts[z] * queryWidth, (long) tokens[z] * queryWidth));
            }
            DeviceBuffer packed = scope.poisoned((long) rows * queryWidth);
            kernel.launchPacked(scope.stream(), shape,
                    new PackedChunks(0, tokens, scope.upload(queryStarts), scope.upload(new int[chunks]), null, null),
                    new PackedKeys(keyCounts, scope.upload(keyStarts), scope.upload(new int[1]),
                            scope.upload(new int[chunks])), scale, deviceQ, deviceK, deviceV, packed);
            float[] expected = scope.download(alone, rows * queryWidth);
            Parity.assertExact("flash attention packed, heads " + queryHeads + "/" + kvHeads + " head dim " + headDim
                    + ", against one launch a chunk", scope.download(packed, rows * queryWidth), expected);
            assertThat(expected).doesNotContain(Float.NaN);
        }
    }

    @Test
    void rejectsUnsupportedHeadDims() {
        FlashAttentionKernel kernel = new FlashAttentionKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer buffer = scope.poisoned(1024);
            assertThatThrownBy(() -> kernel.launch(scope.stream(), new AttentionShape(2, 2, 96), 1, 1, 0, 0.1f,
                    buffer, buffer, buffer, buffer)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("head dims 64 and 128");
        }
    }

    /** Softmax over all keys, in double: the twin of the kernel's bidirectional mode. */
    static float[] bidirectional(AttentionShape shape, int tokens, int keys, float scale, float[] q, float[] k,
            float[] v) {
        int headDim = shape.headDim();
        float[] out = new float[tokens * shape.queryHeads() * headDim];
        double[] weights = new double[keys];
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < shape.queryHeads(); h++) {
                int queryBase = (t * shape.queryHeads() + h) * headDim;
                int kv = shape.kvHeadOf(h);
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < keys; j++) {
                    int keyBase = (j * shape.kvHeads() + kv) * headDim;
                    double dot = 0;
                    for (int d = 0; d < headDim; d++) {
                        dot += (double) q[queryBase + d] * k[keyBase + d];
                    }
                    weights[j] = dot * scale;
                    max = Math.max(max, weights[j]);
                }
                double total = 0;
                for (int j = 0; j < keys; j++) {
                    weights[j] = Math.exp(weights[j] - max);
                    total += weights[j];
                }
                for (int d = 0; d < headDim; d++) {
                    double mixed = 0;
                    for (int j = 0; j < keys; j++) {
                        mixed += weights[j] * v[(j * shape.kvHeads() + kv) * headDim + d];
                    }
                    out[queryBase + d] = (float) (mixed / total);
                }
            }
        }
        return out;
    }

    private static float[] slice(float[] values, int index, int length) {
        return Arrays.copyOfRange(values, index * length, (index + 1) * length);
    }
}
