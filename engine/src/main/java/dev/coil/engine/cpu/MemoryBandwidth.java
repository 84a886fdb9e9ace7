package dev.coil.engine.cpu;

import dev.coil.engine.ops.HugePageArena;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.concurrent.CountDownLatch;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Measures the memory read bandwidth this machine reaches with all cores, the ceiling of a decode
 * step: one token reads every weight once, so bytes of weights / bandwidth is the fastest a step
 * can be.
 */
public final class MemoryBandwidth {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final long VECTOR_BYTES = FLOATS.vectorByteSize();
    private static final long DEFAULT_BYTES = 1L << 30;
    private static final int DEFAULT_RUNS = 5;

    /** Keeps the sums alive so the reads cannot be optimised away. */
    private static volatile float sink;

    private MemoryBandwidth() {}

    /** Best of a few all-core streaming reads of a 1 GiB off-heap buffer (far larger than any L3), in GB/s (1e9 bytes). */
    public static double measureReadGBps() {
        return measureReadGBps(DEFAULT_BYTES, DEFAULT_RUNS);
    }

    /**
     * Best of {@code runs} streaming reads of a {@code bytes}-sized off-heap buffer, one thread per
     * core each reading its own contiguous share, in GB/s (1e9 bytes). One extra unmeasured run
     * comes first to compile the reading loop.
     */
    public static double measureReadGBps(long bytes, int runs) {
        try (Meter meter = new Meter(bytes)) {
            return meter.measureGBps(runs);
        }
    }

    /**
     * A buffer kept for repeated measurements (one before each round of a benchmark, on a machine
     * whose bandwidth drifts), so that each costs only its reads.
     */
    public static final class Meter implements AutoCloseable {

        private final int threads = Runtime.getRuntime().availableProcessors();
        private final long share;
        // On huge pages where the OS offers them, as the weights are kept (WeightStorage.MEMORY): the
        // floor is what the same kind of memory streams at.
        private final Arena arena = HugePageArena.ofShared();
        private final MemorySegment buffer;
        private boolean compiled;

        /** A 1 GiB buffer: far larger than any L3. */
        public Meter() {
            this(DEFAULT_BYTES);
        }

        public Meter(long bytes) {
            this.share = Math.max(1, bytes / threads / (4 * VECTOR_BYTES)) * 4 * VECTOR_BYTES;
            this.buffer = arena.allocate(share * threads, 64);
            // Written, not just allocated: untouched pages all map to one zero page and read from cache.
            buffer.fill((byte) 1);
        }

        /** Best of {@code runs} reads of the whole buffer by all cores, in GB/s; the first call reads once more, unmeasured. */
        public double measureGBps(int runs) {
            if (!compiled) {
                readOnce(buffer, threads, share);
                compiled = true;
            }
            double best = 0;
            for (int run = 0; run < Math.max(1, runs); run++) {
                best = Math.max(best, readOnce(buffer, threads, share));
            }
            return best;
        }

        @Override
        public void close() {
            arena.close();
        }
    }

    /** All threads read their share at once; bytes per nanosecond from release to the last finish. */
    private static double readOnce(MemorySegment buffer, int threads, long share) {
        CountDownLatch start = new CountDownLatch(1);
        Thread[] readers = new Thread[threads];
        float[] sums = new float[threads];
        for (int i = 0; i < threads; i++) {
            int index = i;
            readers[i] = Thread.ofPlatform().daemon().start(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    return;
                }
                sums[index] = sum(buffer, index * share, share);
            });
        }
        long began = System.nanoTime();
        start.countDown();
        try {
            for (Thread reader : readers) {
                reader.join();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while measuring memory bandwidth", e);
        }
        long elapsed = System.nanoTime() - began;
        sink += sums[0];
        return (double) share * threads / elapsed;
    }

    private static float sum(MemorySegment segment, long offset, long bytes) {
        FloatVector s0 = FloatVector.zero(FLOATS);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        for (long o = offset, end = offset + bytes; o < end; o += 4 * VECTOR_BYTES) {
            s0 = s0.add(FloatVector.fromMemorySegment(FLOATS, segment, o, ByteOrder.LITTLE_ENDIAN));
            s1 = s1.add(FloatVector.fromMemorySegment(FLOATS, segment, o + VECTOR_BYTES, ByteOrder.LITTLE_ENDIAN));
            s2 = s2.add(FloatVector.fromMemorySegment(FLOATS, segment, o + 2 * VECTOR_BYTES, ByteOrder.LITTLE_ENDIAN));
            s3 = s3.add(FloatVector.fromMemorySegment(FLOATS, segment, o + 3 * VECTOR_BYTES, ByteOrder.LITTLE_ENDIAN));
        }
        return Lanes.sum(s0.add(s1).add(s2.add(s3)));
    }
}
