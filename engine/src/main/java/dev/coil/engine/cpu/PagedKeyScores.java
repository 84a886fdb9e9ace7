package dev.coil.engine.cpu;

import static dev.coil.engine.cpu.PagedAttention.CHUNK;
import static dev.coil.engine.cpu.PagedAttention.F32;
import static dev.coil.engine.cpu.PagedAttention.INTS;
import static dev.coil.engine.cpu.PagedAttention.LITTLE;
import static dev.coil.engine.cpu.PagedAttention.SCORE_STRIDE;
import static dev.coil.engine.cpu.PagedAttention.U16;
import static dev.coil.engine.cpu.SequenceKernels.LANES;
import static dev.coil.engine.cpu.SequenceKernels.SPECIES;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * The key side of {@link PagedAttention}'s decode: one query row's scores against four cached keys
 * at a time, read in place from the blocks (f32, or bf16 widened by shift and mask), with the four
 * lane sums reduced together.
 */
final class PagedKeyScores {

    private PagedKeyScores() {
    }

    /**
     * scores[at + m] = query row (at qOffset, chunk order) · key j + m (f32, at offsets[j + m] + head),
     * m < 4: two vectors per step into eight accumulator chains (four would wait on the fma latency),
     * the four lane sums reduced together.
     */
    static void scoreFourF32(float[] q, int qOffset, int headDim, MemorySegment keys, long[] offsets, int j,
            long head, float[] scores, int at) {
        long k0 = offsets[j] + head;
        long k1 = offsets[j + 1] + head;
        long k2 = offsets[j + 2] + head;
        long k3 = offsets[j + 3] + head;
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
        int d = 0;
        for (; d + CHUNK <= headDim; d += CHUNK) {
            FloatVector x = FloatVector.fromArray(SPECIES, q, qOffset + d);
            FloatVector y = FloatVector.fromArray(SPECIES, q, qOffset + d + LANES);
            long b = 4L * d;
            long c = b + 4L * LANES;
            s0 = x.fma(FloatVector.fromMemorySegment(SPECIES, keys, k0 + b, LITTLE), s0);
            t0 = y.fma(FloatVector.fromMemorySegment(SPECIES, keys, k0 + c, LITTLE), t0);
            s1 = x.fma(FloatVector.fromMemorySegment(SPECIES, keys, k1 + b, LITTLE), s1);
            t1 = y.fma(FloatVector.fromMemorySegment(SPECIES, keys, k1 + c, LITTLE), t1);
            s2 = x.fma(FloatVector.fromMemorySegment(SPECIES, keys, k2 + b, LITTLE), s2);
            t2 = y.fma(FloatVector.fromMemorySegment(SPECIES, keys, k2 + c, LITTLE), t2);
            s3 = x.fma(FloatVector.fromMemorySegment(SPECIES, keys, k3 + b, LITTLE), s3);
            t3 = y.fma(FloatVector.fromMemorySegment(SPECIES, keys, k3 + c, LITTLE), t3);
        }
        SequenceKernels.sumLanes(s0.add(t0), s1.add(t1), s2.add(t2), s3.add(t3)).intoArray(scores, at);
        for (; d < headDim; d++) {
            float x = q[qOffset + d];
            long b = 4L * d;
            scores[at] += x * keys.get(F32, k0 + b);
            scores[at + 1] += x * keys.get(F32, k1 + b);
            scores[at + 2] += x * keys.get(F32, k2 + b);
            scores[at + 3] += x * keys.get(F32, k3 + b);
        }
    }

    /** {@link #scoreFourF32} for bf16 keys, each chunk widened into its even and odd elements. */
    static void scoreFourBf16(float[] q, int qOffset, int headDim, MemorySegment keys, long[] offsets, int j,
            long head, float[] scores, int at) {
        long k0 = offsets[j] + head;
        long k1 = offsets[j + 1] + head;
        long k2 = offsets[j + 2] + head;
        long k3 = offsets[j + 3] + head;
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
        int d = 0;
        for (; d + CHUNK <= headDim; d += CHUNK) {
            FloatVector even = FloatVector.fromArray(SPECIES, q, qOffset + d);
            FloatVector odd = FloatVector.fromArray(SPECIES, q, qOffset + d + LANES);
            long b = 2L * d;
            IntVector x0 = IntVector.fromMemorySegment(INTS, keys, k0 + b, LITTLE);
            IntVector x1 = IntVector.fromMemorySegment(INTS, keys, k1 + b, LITTLE);
            IntVector x2 = IntVector.fromMemorySegment(INTS, keys, k2 + b, LITTLE);
            IntVector x3 = IntVector.fromMemorySegment(INTS, keys, k3 + b, LITTLE);
            s0 = even.fma(evenHalves(x0), s0);
            t0 = odd.fma(oddHalves(x0), t0);
            s1 = even.fma(evenHalves(x1), s1);
            t1 = odd.fma(oddHalves(x1), t1);
            s2 = even.fma(evenHalves(x2), s2);
            t2 = odd.fma(oddHalves(x2), t2);
            s3 = even.fma(evenHalves(x3), s3);
            t3 = odd.fma(oddHalves(x3), t3);
        }
        SequenceKernels.sumLanes(s0.add(t0), s1.add(t1), s2.add(t2), s3.add(t3)).intoArray(scores, at);
        for (; d < headDim; d++) {
            float x = q[qOffset + d];
            long b = 2L * d;
            scores[at] += x * bf16(keys, k0 + b);
            scores[at + 1] += x * bf16(keys, k1 + b);
            scores[at + 2] += x * bf16(keys, k2 + b);
            scores[at + 3] += x * bf16(keys, k3 + b);
        }
    }

    static FloatVector evenHalves(IntVector pairs) {
        return pairs.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    static FloatVector oddHalves(IntVector pairs) {
        return pairs.and(0xffff0000).reinterpretAsFloats();
    }

    static float bf16(MemorySegment segment, long offset) {
        return Float.intBitsToFloat(segment.get(U16, offset) << 16);
    }
}
