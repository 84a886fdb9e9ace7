package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.blas.Cublas;
import dev.coil.engine.gpu.blas.GpuMatmul;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.SsmShape;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The kernels of context parallelism against double-precision references on odd sizes, and the
 * partial flash attention's invariance: a causal prompt split into a block of earlier keys
 * (attended in full) and its own block (attended causally), the two merged by their log-sum-exp,
 * equals the causal attention over all keys at once, up to the rounding of probabilities to bf16.
 */
@GpuTest
class ContextParallelKernelsTest {

    private static final double LOG2_E = 1.4426950408889634;

    private static ContextParallelKernels kernels() {
        return new ContextParallelKernels(GpuFixture.kernels());
    }

    @Test
    void promptDtIsTheClampedSoftplusOfTheProjectedColumns() {
        Random random = new Random(1);
        int rows = 301;
        int heads = 7;
        int stride = 19;
        int column = 9;
        float[] projected = uniform(random, rows * stride, 30);
        float[] bias = uniform(random, heads, 3);
        float dtMin = 0.01f;
        float dtMax = 5f;
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer dt = scope.poisoned((long) rows * heads);
            kernels().promptDt(scope.stream(), scope.upload(projected), stride, column, scope.upload(bias), dtMin, dtMax,
                    rows, heads, dt);
            float[] actual = scope.download(dt, rows * heads);
            for (int t = 0; t < rows; t++) {
                for (int h = 0; h < heads; h++) {
                    double value = (double) projected[t * stride + column + h] + bias[h];
                    double softplus = value > 20 ? value : Math.log1p(Math.exp(value));
                    double expected = Math.min(Math.max(softplus, dtMin), dtMax);
                    assertThat((double) actual[t * heads + h]).as("dt[%d, %d]", t, h)
                            .isCloseTo(expected, org.assertj.core.data.Offset.offset(1e-5 * Math.max(1, expected)));
                }
            }
        }
    }

    @Test
    void decayCumsumIsThePrefixSumOverTilesOfRows() {
        Random random = new Random(2);
        int rows = 2500; // three tiles of 1024
        int heads = 5;
        float[] dt = new float[rows * heads];
        for (int i = 0; i < dt.length; i++) {
            dt[i] = random.nextFloat() * 0.05f;
        }
        float[] A = {-0.5f, -1f, -2f, -0.01f, -8f};
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer cum = scope.poisoned((long) rows * heads);
            kernels().decayCumsum(scope.stream(), scope.upload(dt), scope.upload(A), rows, heads, cum);
            float[] actual = scope.download(cum, rows * heads);
            for (int h = 0; h < heads; h++) {
                double sum = 0;
                for (int t = 0; t < rows; t++) {
                    sum += (double) dt[t * heads + h] * A[h];
                    assertThat((double) actual[t * heads + h]).as("cum[%d, %d]", t, h)
                            .isCloseTo(sum, org.assertj.core.data.Offset.offset(1e-5 * Math.max(1, Math.abs(sum))));
                }
            }
        }
    }

    @Test
    void correctionAddsTheEnteringStatesOutputsWhereTheDecayHasNotUnderflowed() {
        Random random = new Random(3);
        SsmShape shape = new SsmShape(6, 12, 2, 20);
        int rows = 203;
        int cStride = 53;
        int groupWidth = shape.groups() * shape.stateSize();
        float[] C = uniform(random, rows * cStride, 1);
        float[] state = uniform(random, (int) shape.stateFloats(), 1);
        float[] cum = new float[rows * shape.heads()];
        for (int h = 0; h < shape.heads(); h++) {
            float rate = h == 0 ? 0.9f : 0.05f * h; // head 0 underflows to exp = 0 after ~115 rows
            for (int t = 0; t < rows; t++) {
                cum[t * shape.heads() + h] = -rate * (t + 1);
            }
        }
        float[] y = uniform(random, rows * shape.innerSize(), 1);
        float[] expected = y.clone();
        int headsPerGroup = shape.heads() / shape.groups();
        for (int t = 0; t < rows; t++) {
            for (int h = 0; h < shape.heads(); h++) {
                double factor = Math.exp(cum[t * shape.heads() + h]);
                int g = h / headsPerGroup;
                for (int p = 0; p < shape.headDim(); p++) {
                    double sum = 0;
                    for (int n = 0; n < shape.stateSize(); n++) {
                        sum += (double) C[t * cStride + 3 + g * shape.stateSize() + n]
                                * state[(h * shape.headDim() + p) * shape.stateSize() + n];
                    }
                    expected[t * shape.innerSize() + h * shape.headDim() + p] += (float) (factor * sum);
                }
            }
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer yDevice = scope.upload(y);
            DeviceBuffer cDevice = scope.upload(C);
            GpuMatmul matmul = scope.keep(new GpuMatmul(GpuFixture.device(),
                    scope.keep(Cublas.create(GpuFixture.device()))));
            kernels().correct(scope.stream(), matmul, shape, rows,
                    cDevice.floatSlice(3, (long) (rows - 1) * cStride + groupWidth), cStride, scope.upload(state),
                    scope.upload(cum), yDevice, scope.poisoned((long) rows * shape.innerSize() / shape.groups()));
            float[] actual = scope.download(yDevice, y.length);
            for (int i = 0; i < y.length; i++) {
                assertThat(actual[i]).as("y[%d]", i).isCloseTo(expected[i], org.assertj.core.data.Offset.offset(2e-5f));
            }
        }
    }

    @Test
    void chainStepDecaysTheEnteringStateAndAddsTheChunksOwn() {
        Random random = new Random(4);
        SsmShape shape = new SsmShape(3, 5, 1, 7);
        int rows = 11;
        int floats = (int) shape.stateFloats();
        float[] entering = uniform(random, floats, 1);
        float[] own = uniform(random, floats, 1);
        float[] cum = uniform(random, rows * shape.heads(), 2);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer next = scope.poisoned(floats);
            kernels().chainStep(scope.stream(), shape, scope.upload(entering), scope.upload(own), scope.upload(cum),
                    rows, next);
            float[] actual = scope.download(next, floats);
            int perHead = shape.headDim() * shape.stateSize();
            for (int i = 0; i < floats; i++) {
                double expected = Math.exp(cum[(rows - 1) * shape.heads() + i / perHead]) * entering[i] + own[i];
                assertThat((double) actual[i]).isCloseTo(expected, org.assertj.core.data.Offset.offset(1e-5));
            }
        }
    }

    @Test
    void mergeWeighsTwoPartialsByTheirLogSumExp() {
        Random random = new Random(5);
        int rows = 37;
        int dim = 64;
        float[] out = uniform(random, rows * dim, 1);
        float[] part = uniform(random, rows * dim, 1);
        float[] lse = uniform(random, rows, 6);
        float[] partLse = uniform(random, rows, 6);
        lse[3] = Float.NEGATIVE_INFINITY; // a row that had seen no key yet takes the partial as it is
        partLse[5] = Float.NEGATIVE_INFINITY; // a partial over no key changes nothing
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer outDevice = scope.upload(out);
            DeviceBuffer lseDevice = scope.upload(lse);
            kernels().merge(scope.stream(), outDevice, lseDevice, scope.upload(part), scope.upload(partLse), rows, dim);
            float[] merged = scope.download(outDevice, rows * dim);
            float[] mergedLse = scope.download(lseDevice, rows);
            for (int r = 0; r < rows; r++) {
                double top = Math.max(lse[r], partLse[r]);
                double keep = Math.pow(2, lse[r] - top);
                double take = Math.pow(2, partLse[r] - top);
                assertThat((double) mergedLse[r]).isCloseTo(top + Math.log(keep + take) / Math.log(2),
                        org.assertj.core.data.Offset.offset(1e-5));
                for (int i = 0; i < dim; i++) {
                    double expected = (out[r * dim + i] * keep + part[r * dim + i] * take) / (keep + take);
                    assertThat((double) merged[r * dim + i]).isCloseTo(expected, org.assertj.core.data.Offset.offset(1e-6));
                }
            }
        }
    }

    /**
     * Queries at positions past .. past + tokens − 1: the keys before them in full, merged with
     * their own block causally, equal one causal launch over all keys; and the partial's lse is
     * log2 Σ exp(score) over the keys it saw, against a double-precision sum.
     */
    @Test
    void partialFlashAttentionMergesIntoTheWholeCausalAttention() {
        FlashAttentionKernel flash = new FlashAttentionKernel(GpuFixture.kernels());
        ContextParallelKernels parallel = kernels();
        Random random = new Random(6);
        for (int headDim : new int[] {64, 128}) {
            AttentionShape shape = new AttentionShape(6, 2, headDim);
            int past = 150;
            int tokens = 203;
            int keys = past + tokens;
            float scale = (float) (1 / Math.sqrt(headDim));
            AttentionInputs.Bf16 q = AttentionInputs.Bf16.uniform(random, tokens * 6 * headDim, 1);
            AttentionInputs.Bf16 k = AttentionInputs.Bf16.uniform(random, keys * 2 * headDim, 1);
            AttentionInputs.Bf16 v = AttentionInputs.Bf16.uniform(random, keys * 2 * headDim, 1);
            try (DeviceScope scope = GpuFixture.scope()) {
                DeviceBuffer deviceQ = q.upload(scope);
                DeviceBuffer deviceK = k.upload(scope);
                DeviceBuffer deviceV = v.upload(scope);
                int outFloats = tokens * 6 * headDim;
                DeviceBuffer whole = scope.poisoned(outFloats);
                flash.launch(scope.stream(), shape, 1, tokens, past, scale, deviceQ, deviceK, deviceV, whole);
                DeviceBuffer out = scope.poisoned(outFloats);
                DeviceBuffer lse = scope.poisoned(tokens * 6L);
                DeviceBuffer part = scope.poisoned(outFloats);
                DeviceBuffer partLse = scope.poisoned(tokens * 6L);
                long kvRowBytes = 2L * 2 * headDim;
                flash.launchPartial(scope.stream(), shape, tokens, past, 0, scale, false, deviceQ,
                        deviceK.slice(0, past * kvRowBytes), deviceV.slice(0, past * kvRowBytes), out, lse);
                float[] earlierLse = scope.download(lse, tokens * 6);
                flash.launchPartial(scope.stream(), shape, tokens, tokens, 0, scale, true, deviceQ,
                        deviceK.slice(past * kvRowBytes, tokens * kvRowBytes),
                        deviceV.slice(past * kvRowBytes, tokens * kvRowBytes), part, partLse);
                parallel.merge(scope.stream(), out, lse, part, partLse, tokens * 6, headDim);
                // Each launch rounds its probabilities to bf16 against its own running maximum: the merged
                // result differs from one pass by about the kernel's own error against exact attention.
                AttentionInputs.assertRelativeNorm("d" + headDim + " merged vs whole", scope.download(out, outFloats),
                        scope.download(whole, outFloats), 3e-3);
                for (int t = 0; t < tokens; t += 17) {
                    for (int h = 0; h < 6; h++) {
                        double sum = 0;
                        for (int j = 0; j < past; j++) {
                            double dot = 0;
                            for (int i = 0; i < headDim; i++) {
                                dot += (double) q.values()[(t * 6 + h) * headDim + i]
                                        * k.values()[(j * 2 + h / 3) * headDim + i];
                            }
                            sum += Math.exp(dot * scale);
                        }
                        assertThat((double) earlierLse[t * 6 + h]).as("lse[%d, %d]", t, h)
                                .isCloseTo(Math.log(sum) * LOG2_E, org.assertj.core.data.Offset.offset(1e-3));
                    }
                }
            }
        }
    }

    private static float[] uniform(Random random, int n, double amplitude) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) ((random.nextDouble() * 2 - 1) * amplitude);
        }
        return values;
    }
}
