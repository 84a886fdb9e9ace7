package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.StateStore;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.LayerState;
import dev.coil.engine.model.TestModels;
import dev.coil.engine.runner.LoadedModel;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The prefix cache's slot copies on the device: saved and restored exactly, as many as the budget holds. */
@GpuTest
class DeviceStateStoreTest {

    @Test
    void slotCopiesRestoreExactlyAndThePoolHoldsTheSnapshotBudget() {
        CudaDevice device = GpuFixture.device(); // fails, not skips, without a GPU
        LoadedModel loaded = TestModels.load("granitemoehybrid");
        long slotBytes = 0;
        for (LayerState state : loaded.model().newLayerStates()) {
            if (state instanceof LayerState.Mamba mamba) {
                slotBytes += mamba.bytes();
            }
        }
        // A budget of two slots' copies: the pool keeps one more, for the copy made while the cache evicts.
        CacheSizing sizing = new CacheSizing(16, DType.BF16, 4, 2, true, 1, 2 * slotBytes + slotBytes / 2, 0,
                slotBytes, List.of());
        try (GpuBackend backend = GpuBackend.open(loaded, 0, false)) {
            DeviceStateStore store = (DeviceStateStore) backend.newStateStore(sizing);
            assertThat(store.copies()).isEqualTo(3);
            List<BlockSpec> blocks = loaded.config().blocks();
            float[][] first = fill(store, blocks, 0, 1);
            StateStore.SlotCopy firstCopy = store.saveSlot(0);
            float[][] second = fill(store, blocks, 0, 2);
            StateStore.SlotCopy secondCopy = store.saveSlot(0);
            StateStore.SlotCopy third = store.saveSlot(0);
            assertThat(firstCopy).isNotNull();
            assertThat(secondCopy).isNotNull();
            assertThat(third).isNotNull();
            assertThat(store.saveSlot(0)).as("a fourth copy, beyond the pool").isNull();
            assertThat(firstCopy.bytes()).isEqualTo(slotBytes);

            fill(store, blocks, 1, 3);
            store.restoreSlot(1, firstCopy);
            store.restoreSlot(0, secondCopy);
            device.synchronize();
            assertThat(read(store, blocks, 1)).isDeepEqualTo(first);
            assertThat(read(store, blocks, 0)).isDeepEqualTo(second);

            // A released copy goes back to the pool once, however often it is released.
            firstCopy.release();
            firstCopy.release();
            StateStore.SlotCopy again = store.saveSlot(1);
            assertThat(again).isNotNull();
            assertThat(store.saveSlot(1)).isNull();
            fill(store, blocks, 0, 4);
            store.restoreSlot(0, again);
            device.synchronize();
            assertThat(read(store, blocks, 0)).isDeepEqualTo(first);
        }
    }

    /** Writes random states into a slot (conv then SSM of each Mamba block) and returns them, on the device when it returns. */
    private static float[][] fill(DeviceStateStore store, List<BlockSpec> blocks, int slot, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[][] values = new float[2 * blocks.size()][];
        for (int b = 0; b < blocks.size(); b++) {
            if (blocks.get(b) instanceof BlockSpec.Mamba) {
                values[2 * b] = randoms(random, store.convState(b, slot).floats());
                values[2 * b + 1] = randoms(random, store.ssmState(b, slot).floats());
                store.convState(b, slot).copyFrom(values[2 * b]);
                store.ssmState(b, slot).copyFrom(values[2 * b + 1]);
            }
        }
        GpuFixture.device().synchronize();
        return values;
    }

    private static float[][] read(DeviceStateStore store, List<BlockSpec> blocks, int slot) {
        float[][] values = new float[2 * blocks.size()][];
        for (int b = 0; b < blocks.size(); b++) {
            if (blocks.get(b) instanceof BlockSpec.Mamba) {
                values[2 * b] = new float[(int) store.convState(b, slot).floats()];
                values[2 * b + 1] = new float[(int) store.ssmState(b, slot).floats()];
                store.convState(b, slot).copyTo(values[2 * b]);
                store.ssmState(b, slot).copyTo(values[2 * b + 1]);
            }
        }
        return values;
    }

    private static float[] randoms(SplittableRandom random, long count) {
        float[] values = new float[(int) count];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextDouble(-1, 1);
        }
        return values;
    }
}
