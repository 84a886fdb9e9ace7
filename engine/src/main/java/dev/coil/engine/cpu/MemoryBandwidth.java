package dev.coil.engine.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Measures the memory read bandwidth this machine reaches with all cores, the ceiling of a decode
 * step: one token reads every weight once, so bytes of weights / bandwidth is the fastest a step
 * can be.
 */
public final class MemoryBandwidth {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final long DEFAULT_BYTES = 1L << 30;
    private static final int DEFAULT_RUNS = 5;

    /** Keeps the sums alive so the reads cannot be optimised away. */
    private static volatile float sink;

    private MemoryBandwidth() {}

    /** Best of a few all-core streaming reads of a 1 GiB off-heap buffer (far larger than any L3), in GB/s (1e9 bytes). */
    public static double measureReadGBps() {
        return measureReadGBps(DEFAULT_BYTES, DEFAULT_RUNS);
    }

    /** Best of {@code runs} all-core streaming reads of a {@code bytes}-sized off-heap buffer, in GB/s (1e9 bytes). */
    public static double measureReadGBps(long bytes, int runs) {
        Parallel parallel = Parallel.allCores();
        long blockBytes = 4L * FLOATS.length() * 4 * 1024;
        long blocks = Math.max(1, bytes / blockBytes);
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("bandwidth buffer of " + bytes + " bytes is too large");
        }
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buffer = arena.allocate(blocks * blockBytes, 64);
            // Written, not just allocated: untouched pages all map to one zero page and read from cache.
            parallel.forRange((int) blocks, 1, (start, end) ->
                    buffer.asSlice(start * blockBytes, (end - start) * blockBytes).fill((byte) 1));
            double best = 0;
            for (int run = 0; run < Math.max(1, runs) + 1; run++) {
                float[] sums = new float[(int) blocks];
                long began = System.nanoTime();
                parallel.forRange((int) blocks, 1, (start, end) -> {
                    for (int b = start; b < end; b++) {
                        sums[b] = sum(buffer, b * blockBytes, blockBytes);
                    }
                });
                long elapsed = System.nanoTime() - began;
                sink += sums[0] + sums[sums.length - 1];
                if (run > 0) { // the first run warms up the JIT
                    best = Math.max(best, blocks * blockBytes / (double) elapsed);
                }
            }
            return best;
        }
    }

    private static float sum(MemorySegment segment, long offset, long bytes) {
        long step = 4L * FLOATS.length();
        FloatVector s0 = FloatVector.zero(FLOATS);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        for (long o = offset, end = offset + bytes; o < end; o += 4 * step) {
            s0 = s0.add(FloatVector.fromMemorySegment(FLOATS, segment, o, ByteOrder.LITTLE_ENDIAN));
            s1 = s1.add(FloatVector.fromMemorySegment(FLOATS, segment, o + step, ByteOrder.LITTLE_ENDIAN));
            s2 = s2.add(FloatVector.fromMemorySegment(FLOATS, segment, o + 2 * step, ByteOrder.LITTLE_ENDIAN));
            s3 = s3.add(FloatVector.fromMemorySegment(FLOATS, segment, o + 3 * step, ByteOrder.LITTLE_ENDIAN));
        }
        return s0.add(s1).add(s2.add(s3)).reduceLanes(VectorOperators.ADD);
    }
}
