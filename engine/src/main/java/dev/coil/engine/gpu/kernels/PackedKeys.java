package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import java.util.Arrays;

/**
 * The keys of several sequences' prompt chunks in the paged cache, as the packed gather and flash
 * attention read them: sequence z has {@code counts[z]} keys (its past and its chunk), found through
 * its block table at {@code tables[tableStarts[z]]}, and gathered into rows
 * {@code starts[z] .. starts[z + 1] - 1}.
 *
 * @param counts      each sequence's keys, on the host
 * @param starts      int32 (sequences + 1) on the device, from 0, rising by counts
 * @param tables      int32 on the device: the block tables, each at its table start
 * @param tableStarts int32 (sequences) on the device
 */
public record PackedKeys(int[] counts, DeviceBuffer starts, DeviceBuffer tables, DeviceBuffer tableStarts) {

    public PackedKeys {
        counts = counts.clone();
        for (int count : counts) {
            RowKernels.requireNonNegative(count, "a sequence's keys");
        }
        starts.requireFloats(counts.length + 1L, "starts");
        tableStarts.requireFloats(counts.length, "tableStarts");
    }

    /** Sequences. */
    public int sequences() {
        return counts.length;
    }

    /** Key rows of all sequences. */
    public long rows() {
        return Arrays.stream(counts).asLongStream().sum();
    }

    /** The most keys of a sequence. */
    public int most() {
        return Arrays.stream(counts).max().orElse(0);
    }

    @Override
    public int[] counts() {
        return counts.clone();
    }
}
