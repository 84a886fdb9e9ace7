package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.model.Mamba2Mixer;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.SsmShape;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The kernels of context parallelism against double-precision references on odd sizes, the SSD
 * scan split around a state that enters after the scan from zero, and the partial flash attention's
 * invariance: a causal prompt split into a block of earlier keys
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
    void promptDtIsMamba2MixersClampedSoftplusOfTheProjectedColumns() {
        Random random = new Random(1);
        int rows = 301;
        int heads = 7;
        int stride = 19;
        int column = 9;
        int clamped = 250; // the rows after it are generated tokens being recomputed: not clamped
        float[] projected = uniform(random, rows * stride, 30);
        float[] bias = uniform(random, heads, 3);
        float dtMin = 0.01f;
        float dtMax = 5f;
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer dt = scope.poisoned((long) rows * heads);
            kernels().promptDt(scope.stream(), scope.upload(projected), stride, column, scope.upload(bias), dtMin, dtMax,
                    rows, heads, clamped, dt);
            float[] actual = scope.download(dt, rows * heads);
            int outside = 0;
            for (int t = 0; t < rows; t++) {
                for (int h = 0; h < heads; h++) {
                    float value = Mamba2Mixer.softplus(projected[t * stride + column + h] + bias[h]);
                    float expected = t < clamped ? Math.min(Math.max(value, dtMin), dtMax) : value;
                    outside += value < dtMin || value > dtMax ? 1 : 0;
                    assertThat(actual[t * heads + h]).as("dt[%d, %d]", t, h).isEqualTo(expected);
                }
            }
            assertThat(outside).as("values the clamp moves, or would").isGreaterThan(100);
        }
    }

    /**
     * dt of prompt chunks packed in rows, in one launch, equals one launch a chunk bit for bit, each
     * chunk clamping only its own first rows.
     */
    @Test
    void packedPromptDtEqualsOneLaunchEach() {
        Random random = new Random(2);
        int heads = 5;
        int stride = 17;
        int column = 6;
        int[] lengths = {40, 3, 77, 1};
        int[] clamped = {40, 1, 60, 0};
        int[] starts = Packing.starts(lengths);
        int rows = starts[lengths.length];
        int[] rowChunk = Packing.rowChunk(lengths);
        float[] projected = uniform(random, rows * stride, 30);
        float[] bias = uniform(random, heads, 3);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer deviceProjected = scope.upload(projected);
            DeviceBuffer deviceBias = scope.upload(bias);
            DeviceBuffer expected = scope.poisoned((long) rows * heads);
            for (int s = 0; s < lengths.length; s++) {
                kernels().promptDt(scope.stream(), deviceProjected.floatSlice((long) starts[s] * stride,
                        (long) lengths[s] * stride), stride, column, deviceBias, 0.01f, 5f, lengths[s], heads,
                        clamped[s], expected.floatSlice((long) starts[s] * heads, (long) lengths[s] * heads));
            }
            DeviceBuffer dt = scope.poisoned((long) rows * heads);
            kernels().promptDtPacked(scope.stream(), deviceProjected, stride, column, deviceBias, 0.01f, 5f, heads,
                    new PackedChunks(0, lengths, scope.upload(starts), scope.upload(new int[lengths.length]),
                            scope.upload(clamped), scope.upload(rowChunk)), dt);
            Parity.assertExact("packed prompt dt against one launch a chunk",
                    scope.download(dt, rows * heads), scope.download(expected, rows * heads));
        }
    }

    /**
     * A shard scanned from zero whose entering state arrives afterwards: states from zero, then
     * the entering state taken in, then the outputs, equal one scan from that state (outputs and
     * final state), up to f32 rounding. 300 tokens in SSD chunks of 64: five chunks, the last partial.
     */
    @Test
    void aStateEnteringAfterTheScanFromZeroGivesTheScanFromThatState() {
        Random random = new Random(3);
        SsmShape shape = new SsmShape(4, 16, 2, 32);
        int tokens = 300;
        int chunkSize = 64;
        float[] x = uniform(random, tokens * shape.innerSize(), 1);
        float[] dt = new float[tokens * shape.heads()];
        for (int i = 0; i < dt.length; i++) {
            dt[i] = 0.01f + random.nextFloat() * 0.1f;
        }
        int groupWidth = shape.groups() * shape.stateSize();
        float[] B = uniform(random, tokens * groupWidth, 1);
        float[] C = uniform(random, tokens * groupWidth, 1);
        float[] A = {-0.3f, -1f, -0.05f, -2f};
        float[] D = uniform(random, shape.heads(), 1);
        float[] entering = uniform(random, (int) shape.stateFloats(), 1);
        SsdScanKernel scan = new SsdScanKernel(GpuFixture.kernels());
        try (DeviceScope scope = GpuFixture.scope()) {
            SsdScanKernel.Inputs inputs = SsdScanKernel.Inputs.contiguous(shape, scope.upload(x), scope.upload(dt),
                    scope.upload(B), scope.upload(C));
            DeviceBuffer deviceA = scope.upload(A);
            DeviceBuffer deviceD = scope.upload(D);
            long workspaceBytes = SsdScanKernel.workspaceBytes(shape, 1, tokens, chunkSize);
            int outputs = tokens * shape.innerSize();
            int stateFloats = (int) shape.stateFloats();

            DeviceBuffer whole = scope.upload(entering);
            DeviceBuffer wholeY = scope.poisoned(outputs);
            scan.launch(scope.stream(), SsdScanKernel.Precision.F32, shape, 1, tokens, chunkSize, inputs, deviceA,
                    deviceD, whole, null, wholeY, scope.keep(GpuFixture.device().allocate(workspaceBytes)));

            DeviceBuffer fromZero = scope.upload(new float[stateFloats]);
            DeviceBuffer splitY = scope.poisoned(outputs);
            DeviceBuffer workspace = scope.keep(GpuFixture.device().allocate(workspaceBytes));
            DeviceBuffer leaving = scope.poisoned(stateFloats);
            scan.launchStates(scope.stream(), SsdScanKernel.Precision.F32, shape, tokens, chunkSize, inputs, deviceA,
                    deviceD, fromZero, splitY, workspace);
            scan.enterState(scope.stream(), shape, tokens, chunkSize, workspace, scope.upload(entering), fromZero,
                    leaving);
            scan.launchOutputs(scope.stream(), SsdScanKernel.Precision.F32, shape, tokens, chunkSize, inputs, deviceA,
                    deviceD, leaving, splitY, workspace);
            AttentionInputs.assertRelativeNorm("outputs, entering state taken in after the scan from zero",
                    scope.download(splitY, outputs), scope.download(wholeY, outputs), 1e-5);
            AttentionInputs.assertRelativeNorm("final state", scope.download(leaving, stateFloats),
                    scope.download(whole, stateFloats), 1e-5);
            // The entering state matters here: the same outputs without it differ.
            DeviceBuffer zeroY = scope.poisoned(outputs);
            scan.launch(scope.stream(), SsdScanKernel.Precision.F32, shape, 1, tokens, chunkSize, inputs, deviceA,
                    deviceD, scope.upload(new float[stateFloats]), null, zeroY,
                    scope.keep(GpuFixture.device().allocate(workspaceBytes)));
            float[] withoutState = scope.download(zeroY, outputs);
            float[] withState = scope.download(wholeY, outputs);
            double difference = 0;
            for (int i = 0; i < outputs; i++) {
                difference = Math.max(difference, Math.abs(withState[i] - withoutState[i]));
            }
            assertThat(difference).as("what the entering state changes in the outputs").isFinite().isGreaterThan(1e-2);
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
