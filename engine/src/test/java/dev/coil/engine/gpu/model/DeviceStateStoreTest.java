package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.StateStore;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.kernels.PagedAttentionKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.TestModels;
import dev.coil.engine.runner.LoadedModel;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The prefix cache's copies on the device: states and tail rows saved and restored exactly, as many as the budget holds. */
@GpuTest
class DeviceStateStoreTest {

    @Test
    void copiesRestoreStatesAndTailRowsExactlyAndThePoolHoldsTheSnapshotBudget() {
        CudaDevice device = GpuFixture.device(); // fails, not skips, without a GPU
        LoadedModel loaded = TestModels.load("granitemoehybrid");
        List<BlockSpec> blocks = loaded.config().blocks();
        CacheSizing probe = sizing(blocks, 0);
        long copyBytes = copyBytes(blocks, probe);
        // A budget of two and a half copies: the pool keeps two, and one more for the copy made while the cache evicts.
        CacheSizing sizing = sizing(blocks, 2 * copyBytes + copyBytes / 2);
        int[] first = {0, 1};
        int[] other = {2, 3};
        try (GpuBackend backend = GpuBackend.open(loaded, 0, false)) {
            DeviceStateStore store = (DeviceStateStore) backend.newStateStore(sizing);
            assertThat(store.copies()).isEqualTo(3);
            // The state after 21 positions: 5 rows past the first full block, in block first[1] = 1.
            float[][] states = fill(store, blocks, 0, 1);
            byte[][] rows = fillRows(store, blocks, 1, 2);
            StateStore.SlotCopy saved = store.saveSlot(0, first, 21);
            float[][] later = fill(store, blocks, 0, 3);
            StateStore.SlotCopy atBlock = store.saveSlot(0, first, 32);
            StateStore.SlotCopy third = store.saveSlot(0, first, 32);
            assertThat(saved).isNotNull();
            assertThat(atBlock).isNotNull();
            assertThat(third).isNotNull();
            assertThat(store.saveSlot(0, first, 32)).as("a fourth copy, beyond the pool").isNull();
            assertThat(saved.bytes()).isEqualTo(copyBytes);
            assertThat(saved.position()).isEqualTo(21);

            fill(store, blocks, 1, 4);
            fill(store, blocks, 0, 7); // both slots hold other states than the copies they get back
            fillRows(store, blocks, 3, 5);
            store.restoreSlot(1, other, saved);
            store.restoreSlot(0, other, atBlock);
            device.synchronize();
            assertThat(read(store, blocks, 1)).isDeepEqualTo(states);
            assertThat(read(store, blocks, 0)).isDeepEqualTo(later);
            assertThat(readRows(store, blocks, 3, 5)).as("the 5 tail rows, now at the start of block other[1] = 3")
                    .isDeepEqualTo(prefixRows(rows, 5, store));

            // A released copy goes back to the pool once, however often it is released.
            saved.release();
            saved.release();
            StateStore.SlotCopy again = store.saveSlot(1, first, 16);
            assertThat(again).isNotNull();
            assertThat(store.saveSlot(1, first, 16)).isNull();
            fill(store, blocks, 0, 6);
            store.restoreSlot(0, first, again);
            device.synchronize();
            assertThat(read(store, blocks, 0)).isDeepEqualTo(states);
        }
    }

    private static CacheSizing sizing(List<BlockSpec> blocks, long snapshotBytes) {
        return new CacheSizing(16, DType.BF16, 4, 2, true, 1, snapshotBytes, 0, 0, List.of());
    }

    /** A copy's bytes: the Mamba states (f32) and a block of K/V rows of each attention block. */
    private static long copyBytes(List<BlockSpec> blocks, CacheSizing sizing) {
        long total = 0;
        for (BlockSpec spec : blocks) {
            if (spec instanceof BlockSpec.Mamba m) {
                total += 4L * ((long) (m.convKernel() - 1) * m.convChannels()
                        + (long) m.heads() * m.headDim() * m.stateSize());
            } else if (spec instanceof BlockSpec.Attention a) {
                total += 2L * sizing.blockSize() * a.kvHeads() * StepAttention.paddedHeadDim(a.headDim()) * 2;
            }
        }
        return total;
    }

    /** Random bytes into the whole of block {@code cacheBlock} of every attention block's keys and values. */
    private static byte[][] fillRows(DeviceStateStore store, List<BlockSpec> blocks, int cacheBlock, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        byte[][] rows = new byte[2 * blocks.size()][];
        kvBlocks(store, blocks, cacheBlock).forEach((index, block) -> {
            byte[] values = new byte[(int) block.bytes()];
            for (int i = 0; i < values.length; i++) {
                values[i] = (byte) random.nextInt(256);
            }
            block.copyFrom(values);
            rows[index] = values;
        });
        GpuFixture.device().synchronize();
        return rows;
    }

    /** The first {@code count} rows of block {@code cacheBlock} of every attention block's keys and values. */
    private static byte[][] readRows(DeviceStateStore store, List<BlockSpec> blocks, int cacheBlock, int count) {
        byte[][] rows = new byte[2 * blocks.size()][];
        kvBlocks(store, blocks, cacheBlock).forEach((index, block) -> {
            rows[index] = new byte[(int) (block.bytes() / store.blockSize() * count)];
            block.slice(0, rows[index].length).copyTo(rows[index]);
        });
        return rows;
    }

    /** The first {@code count} rows of each block in {@code rows} (from {@link #fillRows}). */
    private static byte[][] prefixRows(byte[][] rows, int count, DeviceStateStore store) {
        byte[][] prefix = new byte[rows.length][];
        for (int index = 0; index < rows.length; index++) {
            if (rows[index] != null) {
                prefix[index] = Arrays.copyOf(rows[index], rows[index].length / store.blockSize() * count);
            }
        }
        return prefix;
    }

    /** Block {@code cacheBlock} of every attention block's keys (at 2 · block) and values (at 2 · block + 1). */
    private static Map<Integer, DeviceBuffer> kvBlocks(DeviceStateStore store, List<BlockSpec> blocks, int cacheBlock) {
        Map<Integer, DeviceBuffer> kv = new LinkedHashMap<>();
        for (int b = 0; b < blocks.size(); b++) {
            if (blocks.get(b) instanceof BlockSpec.Attention) {
                PagedAttentionKernel.DeviceCache cache = store.cache(b);
                long bytes = (long) cache.blockSize() * cache.kvHeads() * cache.headDim() * cache.dtype().bytes();
                kv.put(2 * b, cache.keys().slice(cacheBlock * bytes, bytes));
                kv.put(2 * b + 1, cache.values().slice(cacheBlock * bytes, bytes));
            }
        }
        return kv;
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
