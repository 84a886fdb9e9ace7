package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.Matrix;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Attention speeds at the shapes of ../shared/reference/anchors.md, printed next to nothing: run
 * ../shared/bench/gpu_anchors.py in the same call and compare ratios. Prefill: batch · seq = 16k
 * tokens, heads · head dim = 2048, every compiled tile. Decode: one query, 32 query / 8 kv heads,
 * head dim 128, bf16 cache in blocks of 16, bytes of K and V read over time. No speed is asserted;
 * each timing first checks a few outputs against double-precision sums, so a wrong kernel prints
 * no number.
 */
@GpuTest
class AttentionTimingsTest {

    private static final int WARMUP = 2;
    private static final int REPEATS = 10;

    @Test
    void prefillAtTheAnchorShapes() {
        int totalTokens = 16384;
        int width = 2048;
        Random random = new Random(1);
        short[][] operands = new short[3][];
        for (int i = 0; i < 3; i++) {
            operands[i] = randomBf16(random, totalTokens * width);
        }
        FlashAttentionKernel kernel = new FlashAttentionKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer q = AttentionInputs.upload(scope, operands[0]);
            DeviceBuffer k = AttentionInputs.upload(scope, operands[1]);
            DeviceBuffer v = AttentionInputs.upload(scope, operands[2]);
            DeviceBuffer out = scope.poisoned((long) totalTokens * width);
            for (int headDim : new int[] {64, 128}) {
                for (int seq : new int[] {1024, 4096, 16384}) {
                    for (boolean causal : new boolean[] {false, true}) {
                        int batch = totalTokens / seq;
                        AttentionShape shape = new AttentionShape(width / headDim, width / headDim, headDim);
                        float scale = (float) (1 / Math.sqrt(headDim));
                        double flops = 4.0 * batch * shape.queryHeads() * seq * (double) seq * headDim
                                / (causal ? 2 : 1);
                        StringBuilder line = new StringBuilder(String.format(
                                "[timing] flash attention hd %d seq %5d batch %2d %s:", headDim, seq, batch,
                                causal ? "causal" : "full  "));
                        for (FlashAttentionKernel.Tile tile : FlashAttentionKernel.tiles(headDim)) {
                            Runnable work = () -> kernel.launch(scope.stream(), tile, shape, batch, seq, 0, scale,
                                    causal, q, k, v, out);
                            out.fill(DeviceScope.POISON); // the tile before wrote the same rows
                            work.run();
                            checkPrefillRows(scope, out, operands, shape, batch, seq, scale, causal, random);
                            float millis = time(scope, work);
                            line.append(String.format("  m%d_n%d_w%d %.3f ms %.0f TFLOP/s", tile.queryRows(),
                                    tile.keyRows(), tile.warps(), millis, flops / (millis * 1e-3) / 1e12));
                        }
                        System.out.println(line);
                    }
                }
            }
        }
    }

    @Test
    void decodeBandwidth() {
        AttentionShape shape = new AttentionShape(32, 8, 128);
        int blockSize = 16;
        int longest = 131072;
        int blocks = longest / blockSize;
        int rowWidth = shape.kvHeads() * shape.headDim();
        Random random = new Random(2);
        short[] keyBits = randomBf16(random, blocks * blockSize * rowWidth);
        short[] valueBits = randomBf16(random, keyBits.length);
        int[] permutation = new int[blocks];
        Arrays.setAll(permutation, i -> i);
        for (int i = blocks - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int swap = permutation[i];
            permutation[i] = permutation[j];
            permutation[j] = swap;
        }
        CudaDevice device = GpuFixture.device();
        PagedAttentionKernel kernel = new PagedAttentionKernel(GpuFixture.kernels(), device.multiprocessors());
        try (DeviceScope scope = GpuFixture.scope()) {
            PagedAttentionKernel.DeviceCache cache = new PagedAttentionKernel.DeviceCache(
                    AttentionInputs.upload(scope, keyBits), AttentionInputs.upload(scope, valueBits), DType.BF16, blocks,
                    blockSize, shape.kvHeads(), shape.headDim());
            QueuedLaunchTimer timer = new QueuedLaunchTimer(device, scope);
            float[] q = Parity.uniform(random, shape.queryHeads() * shape.headDim(), -4, 4);
            DeviceBuffer deviceQ = scope.upload(q);
            DeviceBuffer out = scope.poisoned(q.length);
            float scale = (float) (1 / Math.sqrt(shape.headDim()));
            for (int context : new int[] {4096, 32768, 131072}) {
                int tableLength = context / blockSize;
                // Disjoint tables, used in turn, so that the K/V read does not stay in L2.
                int rotations = Math.min(8, blocks / tableLength);
                DeviceBuffer[] tables = new DeviceBuffer[rotations];
                for (int r = 0; r < rotations; r++) {
                    tables[r] = scope.upload(Arrays.copyOfRange(permutation, r * tableLength, (r + 1) * tableLength));
                }
                DeviceBuffer lengths = scope.upload(new int[] {context});
                PagedAttentionKernel.Split split = kernel.plan(shape, 1, context);
                DeviceBuffer workspace = scope.poisoned(Math.max(1, split.workspaceFloats()));
                int[] call = {0};
                Runnable work = () -> kernel.launch(scope.stream(), split, shape, 1, context, scale, deviceQ, cache,
                        tables[call[0]++ % rotations], tableLength, lengths, workspace, out);
                call[0] = 0;
                work.run();
                checkDecode(scope, out, q, keyBits, valueBits, permutation, shape, blockSize, context, scale);

                float millis = timer.millisPerLaunch(50, work);
                double bytes = 2.0 * context * rowWidth * 2;
                System.out.printf("[timing] paged decode attention context %6d, 32/8 heads, hd 128, bf16 KV, blocks "
                        + "of 16 (%s): %.1f µs, %.0f GB/s of K/V%n", context, split, millis * 1e3,
                        bytes / (millis * 1e-3) / 1e9);
            }
        }
    }

    /** Two rows of the last sequence (the longest causal rows), against double-precision sums. */
    private static void checkPrefillRows(DeviceScope scope, DeviceBuffer out, short[][] operands, AttentionShape shape,
            int batch, int seq, float scale, boolean causal, Random random) {
        int headDim = shape.headDim();
        int width = shape.queryHeads() * headDim;
        float[] result = scope.download(out, batch * seq * width);
        for (int probe = 0; probe < 2; probe++) {
            int b = batch - 1;
            int t = probe == 0 ? seq - 1 : random.nextInt(seq);
            int h = random.nextInt(shape.queryHeads());
            int visible = causal ? t + 1 : seq;
            double[] weights = new double[visible];
            double max = Double.NEGATIVE_INFINITY;
            int queryBase = ((b * seq + t) * shape.queryHeads() + h) * headDim;
            for (int j = 0; j < visible; j++) {
                int keyBase = ((b * seq + j) * shape.kvHeads() + h) * headDim;
                double dot = 0;
                for (int d = 0; d < headDim; d++) {
                    dot += (double) Matrix.bf16ToFloat(operands[0][queryBase + d])
                            * Matrix.bf16ToFloat(operands[1][keyBase + d]);
                }
                weights[j] = dot * scale;
                max = Math.max(max, weights[j]);
            }
            double total = 0;
            for (int j = 0; j < visible; j++) {
                weights[j] = Math.exp(weights[j] - max);
                total += weights[j];
            }
            for (int d = 0; d < headDim; d += 17) {
                double mixed = 0;
                for (int j = 0; j < visible; j++) {
                    mixed += weights[j] * Matrix.bf16ToFloat(operands[2][((b * seq + j) * shape.kvHeads() + h) * headDim + d]);
                }
                // Averages of many values in [-1, 1] are small (~0.005 at 16k keys); bf16 P leaves ~1e-5.
                assertThat((double) result[queryBase + d]).as("out[%d, %d, %d, %d]", b, t, h, d)
                        .isCloseTo(mixed / total, within(2e-4 + 1e-2 * Math.abs(mixed / total)));
            }
        }
    }

    /** Every head of the decode output against double-precision sums over the cached rows. */
    private static void checkDecode(DeviceScope scope, DeviceBuffer out, float[] q, short[] keyBits, short[] valueBits,
            int[] table, AttentionShape shape, int blockSize, int context, float scale) {
        int headDim = shape.headDim();
        float[] result = scope.download(out, q.length);
        for (int h = 0; h < shape.queryHeads(); h += 5) {
            int kv = shape.kvHeadOf(h);
            double[] weights = new double[context];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < context; j++) {
                long row = (long) table[j / blockSize] * blockSize + j % blockSize;
                int base = (int) ((row * shape.kvHeads() + kv) * headDim);
                double dot = 0;
                for (int d = 0; d < headDim; d++) {
                    dot += (double) q[h * headDim + d] * Matrix.bf16ToFloat(keyBits[base + d]);
                }
                weights[j] = dot * scale;
                max = Math.max(max, weights[j]);
            }
            double total = 0;
            for (int j = 0; j < context; j++) {
                weights[j] = Math.exp(weights[j] - max);
                total += weights[j];
            }
            for (int d = 0; d < headDim; d += 13) {
                double mixed = 0;
                for (int j = 0; j < context; j++) {
                    long row = (long) table[j / blockSize] * blockSize + j % blockSize;
                    mixed += weights[j] * Matrix.bf16ToFloat(valueBits[(int) ((row * shape.kvHeads() + kv) * headDim + d)]);
                }
                assertThat((double) result[h * headDim + d]).as("decode out[%d, %d] at context %d", h, d, context)
                        .isCloseTo(mixed / total, within(1e-5 + 1e-4 * Math.abs(mixed / total)));
            }
        }
    }

    /** Median device time of one run of {@code work}, in milliseconds, after warm-up. */
    private static float time(DeviceScope scope, Runnable work) {
        CudaDevice device = GpuFixture.device();
        CudaStream stream = scope.stream();
        for (int i = 0; i < WARMUP; i++) {
            work.run();
        }
        float[] samples = new float[REPEATS];
        try (CudaEvent start = device.newEvent(); CudaEvent end = device.newEvent()) {
            for (int i = 0; i < REPEATS; i++) {
                start.record(stream);
                work.run();
                end.record(stream);
                samples[i] = end.millisSince(start);
            }
        }
        Arrays.sort(samples);
        return samples[REPEATS / 2];
    }

    /** Uniform values in [-1, 1) as bf16 bits, from a fast generator (hundreds of millions of them). */
    private static short[] randomBf16(Random seed, int n) {
        short[] bits = new short[n];
        long state = seed.nextLong() | 1;
        for (int i = 0; i < n; i++) {
            state ^= state << 13;
            state ^= state >>> 7;
            state ^= state << 17;
            float value = ((state >>> 40) * 0x1.0p-24f) * 2 - 1;
            bits[i] = Matrix.floatToBf16(value);
        }
        return bits;
    }
}
