package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import java.util.Arrays;

/**
 * The prompt chunks of several sequences packed one after another in rows, as the packed prefill
 * kernels read them (one launch for every chunk instead of one a chunk): chunk s holds rows
 * {@code starts[s] .. starts[s + 1] - 1} and owns state slot {@code slots[s]}; its first
 * {@code clamped[s]} rows are prompt tokens (dt clamped), the rest generated tokens being
 * recomputed; {@code rowChunk[r]} is the chunk of row r.
 *
 * @param first    starts[0], on the host: the row where chunk 0 begins (0 unless these chunks are a
 *                 later part of a longer packing)
 * @param lengths  each chunk's rows, on the host (for the launches' checks and grids)
 * @param starts   int32 (chunks + 1) on the device, from first, rising by lengths
 * @param slots    int32 (chunks) on the device, distinct
 * @param clamped  int32 (chunks) on the device, or null where no kernel of the launch reads it
 * @param rowChunk int32 (rows) on the device, or null where no kernel of the launch reads it
 */
public record PackedChunks(int first, int[] lengths, DeviceBuffer starts, DeviceBuffer slots, DeviceBuffer clamped,
        DeviceBuffer rowChunk) {

    public PackedChunks {
        RowKernels.requireNonNegative(first, "first");
        lengths = lengths.clone();
        for (int length : lengths) {
            RowKernels.requireNonNegative(length, "a chunk's length");
        }
        starts.requireFloats(lengths.length + 1L, "starts");
        slots.requireFloats(lengths.length, "slots");
        if (clamped != null) {
            clamped.requireFloats(lengths.length, "clamped");
        }
        if (rowChunk != null) {
            if (first != 0) {
                throw new IllegalArgumentException("rowChunk numbers the chunks of a packing from its first row; "
                        + "these start at row " + first);
            }
            rowChunk.requireFloats(Arrays.stream(lengths).asLongStream().sum(), "rowChunk");
        }
    }

    /** Chunks packed. */
    public int chunks() {
        return lengths.length;
    }

    /** Rows of all chunks. */
    public int rows() {
        return Math.toIntExact(Arrays.stream(lengths).asLongStream().sum());
    }

    /** The row after the last chunk's: the rows an input or output must hold. */
    public int end() {
        return first + rows();
    }

    /** The longest chunk's rows. */
    public int longest() {
        return Arrays.stream(lengths).max().orElse(0);
    }

    @Override
    public int[] lengths() {
        return lengths.clone();
    }
}
