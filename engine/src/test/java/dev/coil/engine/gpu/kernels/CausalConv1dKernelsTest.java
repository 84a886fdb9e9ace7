package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The causal conv1d + SiLU against the reference: prompt chunks of every length (shorter and longer
 * than the state) carrying their state, read from rows wider than the channels as in_proj's output
 * is; and the decode update over a batch of sequences in scattered state slots.
 */
@GpuTest
class CausalConv1dKernelsTest {

    private static final double TOLERANCE = 2e-6;

    private final ReferenceOps reference = new ReferenceOps();

    @ParameterizedTest(name = "channels {0}, kernel {1}, bias {2}")
    @CsvSource({"1,1,true", "3,2,false", "67,4,true", "1029,4,false", "130,3,true"})
    void chunksCarryTheirStateAsTheReferenceDoes(int channels, int kernel, boolean withBias) {
        Random random = new Random(channels * 7L + kernel);
        int history = kernel - 1;
        int stride = channels + 13;
        int offset = 5;
        float[] weight = Parity.uniform(random, channels * kernel, -1, 1);
        float[] bias = withBias ? Parity.uniform(random, channels, -1, 1) : null;
        float[] expectedState = Parity.uniform(random, history * channels, -2, 2);
        int[] chunks = {5, 1, 2, 33, 1};

        try (DeviceScope scope = GpuFixture.scope()) {
            CausalConv1dKernel conv = new CausalConv1dKernel(GpuFixture.kernels());
            DeviceBuffer deviceWeight = scope.upload(weight);
            DeviceBuffer deviceBias = bias == null ? null : scope.upload(bias);
            DeviceBuffer deviceState = scope.upload(expectedState.length == 0 ? new float[1] : expectedState);
            for (int chunk = 0; chunk < chunks.length; chunk++) {
                int tokens = chunks[chunk];
                float[] input = Parity.uniform(random, tokens * channels, -2, 2);
                float[] wide = Parity.uniform(random, offset + tokens * stride, -9, 9);
                for (int t = 0; t < tokens; t++) {
                    System.arraycopy(input, t * channels, wide, offset + t * stride, channels);
                }
                float[] expected = new float[tokens * channels];
                reference.causalConv1d(input, tokens, channels, weight, bias, kernel, expectedState, expected);

                DeviceBuffer out = scope.poisoned(expected.length);
                DeviceBuffer rows = scope.upload(wide).floatSlice(offset, (long) (tokens - 1) * stride + channels);
                conv.launch(scope.stream(), rows, stride, tokens, channels, deviceWeight, deviceBias, kernel,
                        deviceState, out);
                String what = "causal_conv1d channels " + channels + " kernel " + kernel + " chunk " + chunk + " ("
                        + tokens + " tokens)";
                Parity.assertClose(what, scope.download(out, expected.length), expected, TOLERANCE);
                Parity.assertExact(what + " state", scope.download(deviceState, expectedState.length), expectedState);
            }
        }
    }

    /**
     * Prompt chunks of several sequences packed in rows, convolved in one launch, equal one launch a
     * chunk bit for bit: outputs and every slot's state (chunks shorter than the history included),
     * with the slots no chunk owns left alone.
     */
    @ParameterizedTest(name = "channels {0}, kernel {1}")
    @CsvSource({"1,2", "67,4", "1029,4", "130,3", "19,1", "300,8", "45,10"})
    void packedChunksEqualOneLaunchEach(int channels, int kernel) {
        Random random = new Random(channels * 11L + kernel);
        int history = kernel - 1;
        // Chunks shorter than the history, and chunks that start and end inside a thread's 16 rows.
        int[] lengths = {5, 1, 2, 33, 7, 40, 3, 17};
        int[] slots = {3, 6, 0, 2, 5, 7, 9, 8};
        int slotCount = 10;
        int[] starts = Packing.starts(lengths);
        int rows = starts[lengths.length];
        int[] rowChunk = Packing.rowChunk(lengths);
        int stride = channels + 5;
        float[] wide = Parity.uniform(random, rows * stride, -2, 2);
        float[] weight = Parity.uniform(random, channels * kernel, -1, 1);
        float[] bias = Parity.uniform(random, channels, -1, 1);
        float[] pool = Parity.uniform(random, Math.max(1, slotCount * history * channels), -2, 2);
        int stateFloats = history * channels;

        try (DeviceScope scope = GpuFixture.scope()) {
            CausalConv1dKernel conv = new CausalConv1dKernel(GpuFixture.kernels());
            DeviceBuffer input = scope.upload(wide);
            DeviceBuffer deviceWeight = scope.upload(weight);
            DeviceBuffer deviceBias = scope.upload(bias);

            DeviceBuffer expectedPool = scope.upload(pool);
            DeviceBuffer expectedOut = scope.poisoned((long) rows * channels);
            for (int s = 0; s < lengths.length; s++) {
                conv.launch(scope.stream(), input.floatSlice((long) starts[s] * stride, (long) lengths[s] * stride),
                        stride, lengths[s], channels, deviceWeight, deviceBias, kernel,
                        stateFloats == 0 ? expectedPool : expectedPool.floatSlice((long) slots[s] * stateFloats,
                                stateFloats),
                        expectedOut.floatSlice((long) starts[s] * channels, (long) lengths[s] * channels));
            }

            DeviceBuffer devicePool = scope.upload(pool);
            DeviceBuffer out = scope.poisoned((long) rows * channels);
            conv.launchPacked(scope.stream(), input, stride, channels, deviceWeight, deviceBias, kernel, devicePool,
                    new PackedChunks(0, lengths, scope.upload(starts), scope.upload(slots), null,
                            scope.upload(rowChunk)), out);
            String what = "causal_conv1d packed, channels " + channels + " kernel " + kernel;
            Parity.assertExact(what + ": out against one launch a chunk", scope.download(out, rows * channels),
                    scope.download(expectedOut, rows * channels));
            float[] packedPool = scope.download(devicePool, pool.length);
            Parity.assertExact(what + ": states against one launch a chunk", packedPool,
                    scope.download(expectedPool, pool.length));
            if (stateFloats > 0) {
                for (int slot : new int[] {1, 4}) { // owned by no chunk
                    Parity.assertExact(what + ": slot " + slot + ", which no chunk owns",
                            Arrays.copyOfRange(packedPool, slot * stateFloats, (slot + 1) * stateFloats),
                            Arrays.copyOfRange(pool, slot * stateFloats, (slot + 1) * stateFloats));
                }
                assertThat(Arrays.equals(packedPool, pool)).as(what + ": the chunks moved their states").isFalse();
            }
        }
    }

    @ParameterizedTest(name = "channels {0}, kernel {1}")
    @CsvSource({"1,2", "67,4", "1029,4", "130,3", "19,1"})
    void decodeUpdateMatchesTheReferenceForEverySequenceAndLeavesOtherSlotsAlone(int channels, int kernel) {
        Random random = new Random(channels * 3L + kernel);
        int history = kernel - 1;
        int slotCount = 6;
        int[] slots = {4, 0, 2};
        int batch = slots.length;
        int stride = channels + 7;
        float[] weight = Parity.uniform(random, channels * kernel, -1, 1);
        float[] bias = Parity.uniform(random, channels, -1, 1);
        float[] pool = Parity.uniform(random, Math.max(1, slotCount * history * channels), -2, 2);
        float[] expectedPool = pool.clone();

        try (DeviceScope scope = GpuFixture.scope()) {
            CausalConv1dUpdateKernel update = new CausalConv1dUpdateKernel(GpuFixture.kernels());
            DeviceBuffer devicePool = scope.upload(pool);
            DeviceBuffer deviceSlots = scope.upload(slots);
            DeviceBuffer deviceWeight = scope.upload(weight);
            DeviceBuffer deviceBias = scope.upload(bias);
            for (int step = 0; step < 3; step++) {
                float[] wide = Parity.uniform(random, batch * stride, -2, 2);
                float[] expected = new float[batch * channels];
                for (int b = 0; b < batch; b++) {
                    int base = slots[b] * history * channels;
                    float[] state = Arrays.copyOfRange(expectedPool, base, base + history * channels);
                    float[] row = Arrays.copyOfRange(wide, b * stride, b * stride + channels);
                    float[] out = new float[channels];
                    reference.causalConv1d(row, 1, channels, weight, bias, kernel, state, out);
                    System.arraycopy(state, 0, expectedPool, base, state.length);
                    System.arraycopy(out, 0, expected, b * channels, channels);
                }
                DeviceBuffer out = scope.poisoned(expected.length);
                update.launch(scope.stream(), scope.upload(wide), stride, batch, channels, deviceWeight, deviceBias,
                        kernel, devicePool, deviceSlots, out);
                String what = "causal_conv1d_update channels " + channels + " kernel " + kernel + " step " + step;
                Parity.assertClose(what, scope.download(out, expected.length), expected, TOLERANCE);
                Parity.assertExact(what + " state pool", scope.download(devicePool, pool.length), expectedPool);
            }
        }
    }
}
