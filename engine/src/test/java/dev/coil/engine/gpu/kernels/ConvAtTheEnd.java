package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.Parity;
import java.util.Random;
import java.util.function.BiConsumer;

/**
 * A decode step's in_proj ending in Mamba-2's conv update, against the product followed by
 * causal_conv1d_update_f32: the few-rows products that make the conv at their end (GemvKernel,
 * InvariantGemmKernel) must leave the product, the convolved channels and the conv states bit for
 * bit as the separate launches do.
 */
final class ConvAtTheEnd {

    /** in_proj's z columns before the conv's xBC columns. */
    static final int INNER = 64;
    /** The conv's channels (xBC). */
    static final int CHANNELS = 96;
    /** in_proj's outputs: z | xBC | dt, as Mamba-2's. */
    static final int WIDTH = INNER + CHANNELS + 5;

    private ConvAtTheEnd() {
    }

    /**
     * Runs {@code project} into a product of rows × {@link #WIDTH} twice: once plainly (conv null)
     * followed by the conv kernel, once ending in the conv; asserts the two alike. The conv's weights,
     * bias and the states of {@code slotCount} slots are drawn from {@code random}; row r updates slot
     * slots[r].
     */
    static void assertLikeTheSeparateKernel(DeviceScope scope, Random random, int rows, int convKernel, boolean bias,
            int[] slots, int slotCount, BiConsumer<DeviceBuffer, GemvKernel.Conv> project) {
        float[] convWeight = Parity.uniform(random, CHANNELS * convKernel, -1, 1);
        float[] convBias = Parity.uniform(random, CHANNELS, -1, 1);
        float[] states = Parity.uniform(random, slotCount * Math.max(1, convKernel - 1) * CHANNELS, -2, 2);
        DeviceBuffer slotBuffer = scope.upload(slots);
        DeviceBuffer weightDevice = scope.upload(convWeight);
        DeviceBuffer biasDevice = bias ? scope.upload(convBias) : null;

        DeviceBuffer separateStates = scope.upload(states);
        DeviceBuffer separateProjected = scope.poisoned((long) rows * WIDTH);
        DeviceBuffer separateConvolved = scope.poisoned((long) rows * CHANNELS);
        project.accept(separateProjected, null);
        new CausalConv1dUpdateKernel(GpuFixture.kernels()).launch(scope.stream(),
                separateProjected.floatSlice(INNER, (long) (rows - 1) * WIDTH + CHANNELS), WIDTH, rows, CHANNELS,
                weightDevice, biasDevice, convKernel, separateStates, slotBuffer, separateConvolved);

        DeviceBuffer fusedStates = scope.upload(states);
        DeviceBuffer fusedProjected = scope.poisoned((long) rows * WIDTH);
        DeviceBuffer fusedConvolved = scope.poisoned((long) rows * CHANNELS);
        project.accept(fusedProjected, new GemvKernel.Conv(weightDevice, biasDevice, convKernel, fusedStates,
                slotBuffer, fusedConvolved, INNER, CHANNELS));
        Parity.assertExact("in_proj", scope.download(fusedProjected, rows * WIDTH),
                scope.download(separateProjected, rows * WIDTH));
        Parity.assertExact("conv of the new token at the end of in_proj", scope.download(fusedConvolved,
                rows * CHANNELS), scope.download(separateConvolved, rows * CHANNELS));
        Parity.assertExact("conv states after the update", scope.download(fusedStates, states.length),
                scope.download(separateStates, states.length));
    }
}
