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

/**
 * The value side of {@link PagedAttention}'s decode: accumulators += scores · values over a tile of
 * cached positions, read in place from the blocks, several rows and chunks per pass so that each
 * pass runs independent accumulator chains.
 */
final class PagedValueSums {

    private PagedValueSums() {
    }

    /**
     * accumulators[firstRow + r] += Σ_j scores[firstRow + r, j] · value j of the head (at offsets[j] +
     * head), r < rows, j < count. A chunk is 2·LANES elements (bf16: its even, then its odd elements;
     * f32: two vectors in order). Four rows share each loaded chunk; a row left over takes four chunks
     * at a time (then two, then one), so that each pass runs eight independent accumulator chains
     * where the head is wide enough.
     */
    static void accumulateValues(boolean bf16, MemorySegment values, long[] offsets, long head, int count,
            int firstRow, int rows, int headDim, PagedWorkspace workspace) {
        int chunks = headDim / CHUNK;
        int r = firstRow;
        for (; r + 4 <= firstRow + rows; r += 4) {
            for (int c = 0; c < chunks; c++) {
                if (bf16) {
                    fourRowsOneChunkBf16(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                } else {
                    fourRowsOneChunkF32(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                }
            }
        }
        for (; r < firstRow + rows; r++) {
            int c = 0;
            for (; c + 4 <= chunks; c += 4) {
                if (bf16) {
                    oneRowFourChunksBf16(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                } else {
                    oneRowFourChunksF32(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                }
            }
            for (; c + 2 <= chunks; c += 2) {
                if (bf16) {
                    oneRowTwoChunksBf16(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                } else {
                    oneRowTwoChunksF32(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                }
            }
            if (c < chunks) {
                if (bf16) {
                    oneRowOneChunkBf16(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                } else {
                    oneRowOneChunkF32(values, offsets, head, count, r, c * CHUNK, headDim, workspace);
                }
            }
        }
        if (chunks * CHUNK < headDim) {
            remainingElements(bf16, values, offsets, head, count, firstRow, rows, chunks * CHUNK, headDim, workspace);
        }
    }

    static void fourRowsOneChunkF32(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, PagedWorkspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a0 = r * headDim + d;
        int a1 = a0 + headDim;
        int a2 = a1 + headDim;
        int a3 = a2 + headDim;
        FloatVector r0l = FloatVector.fromArray(SPECIES, acc, a0);
        FloatVector r0h = FloatVector.fromArray(SPECIES, acc, a0 + LANES);
        FloatVector r1l = FloatVector.fromArray(SPECIES, acc, a1);
        FloatVector r1h = FloatVector.fromArray(SPECIES, acc, a1 + LANES);
        FloatVector r2l = FloatVector.fromArray(SPECIES, acc, a2);
        FloatVector r2h = FloatVector.fromArray(SPECIES, acc, a2 + LANES);
        FloatVector r3l = FloatVector.fromArray(SPECIES, acc, a3);
        FloatVector r3h = FloatVector.fromArray(SPECIES, acc, a3 + LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 4L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector low = FloatVector.fromMemorySegment(SPECIES, values, offset, LITTLE);
            FloatVector high = FloatVector.fromMemorySegment(SPECIES, values, offset + 4L * LANES, LITTLE);
            FloatVector w0 = FloatVector.broadcast(SPECIES, scores[p]);
            FloatVector w1 = FloatVector.broadcast(SPECIES, scores[p + SCORE_STRIDE]);
            FloatVector w2 = FloatVector.broadcast(SPECIES, scores[p + 2 * SCORE_STRIDE]);
            FloatVector w3 = FloatVector.broadcast(SPECIES, scores[p + 3 * SCORE_STRIDE]);
            r0l = w0.fma(low, r0l);
            r0h = w0.fma(high, r0h);
            r1l = w1.fma(low, r1l);
            r1h = w1.fma(high, r1h);
            r2l = w2.fma(low, r2l);
            r2h = w2.fma(high, r2h);
            r3l = w3.fma(low, r3l);
            r3h = w3.fma(high, r3h);
        }
        r0l.intoArray(acc, a0);
        r0h.intoArray(acc, a0 + LANES);
        r1l.intoArray(acc, a1);
        r1h.intoArray(acc, a1 + LANES);
        r2l.intoArray(acc, a2);
        r2h.intoArray(acc, a2 + LANES);
        r3l.intoArray(acc, a3);
        r3h.intoArray(acc, a3 + LANES);
    }

    static void fourRowsOneChunkBf16(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, PagedWorkspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a0 = r * headDim + d;
        int a1 = a0 + headDim;
        int a2 = a1 + headDim;
        int a3 = a2 + headDim;
        FloatVector r0e = FloatVector.fromArray(SPECIES, acc, a0);
        FloatVector r0o = FloatVector.fromArray(SPECIES, acc, a0 + LANES);
        FloatVector r1e = FloatVector.fromArray(SPECIES, acc, a1);
        FloatVector r1o = FloatVector.fromArray(SPECIES, acc, a1 + LANES);
        FloatVector r2e = FloatVector.fromArray(SPECIES, acc, a2);
        FloatVector r2o = FloatVector.fromArray(SPECIES, acc, a2 + LANES);
        FloatVector r3e = FloatVector.fromArray(SPECIES, acc, a3);
        FloatVector r3o = FloatVector.fromArray(SPECIES, acc, a3 + LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 2L * d;
        for (int j = 0; j < count; j++, p++) {
            IntVector x = IntVector.fromMemorySegment(INTS, values, offsets[j] + b, LITTLE);
            FloatVector even = PagedKeyScores.evenHalves(x);
            FloatVector odd = PagedKeyScores.oddHalves(x);
            FloatVector w0 = FloatVector.broadcast(SPECIES, scores[p]);
            FloatVector w1 = FloatVector.broadcast(SPECIES, scores[p + SCORE_STRIDE]);
            FloatVector w2 = FloatVector.broadcast(SPECIES, scores[p + 2 * SCORE_STRIDE]);
            FloatVector w3 = FloatVector.broadcast(SPECIES, scores[p + 3 * SCORE_STRIDE]);
            r0e = w0.fma(even, r0e);
            r0o = w0.fma(odd, r0o);
            r1e = w1.fma(even, r1e);
            r1o = w1.fma(odd, r1o);
            r2e = w2.fma(even, r2e);
            r2o = w2.fma(odd, r2o);
            r3e = w3.fma(even, r3e);
            r3o = w3.fma(odd, r3o);
        }
        r0e.intoArray(acc, a0);
        r0o.intoArray(acc, a0 + LANES);
        r1e.intoArray(acc, a1);
        r1o.intoArray(acc, a1 + LANES);
        r2e.intoArray(acc, a2);
        r2o.intoArray(acc, a2 + LANES);
        r3e.intoArray(acc, a3);
        r3o.intoArray(acc, a3 + LANES);
    }

    static void oneRowFourChunksF32(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, PagedWorkspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        FloatVector s2 = FloatVector.fromArray(SPECIES, acc, a + 2 * LANES);
        FloatVector s3 = FloatVector.fromArray(SPECIES, acc, a + 3 * LANES);
        FloatVector s4 = FloatVector.fromArray(SPECIES, acc, a + 4 * LANES);
        FloatVector s5 = FloatVector.fromArray(SPECIES, acc, a + 5 * LANES);
        FloatVector s6 = FloatVector.fromArray(SPECIES, acc, a + 6 * LANES);
        FloatVector s7 = FloatVector.fromArray(SPECIES, acc, a + 7 * LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 4L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            s0 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset, LITTLE), s0);
            s1 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 4L * LANES, LITTLE), s1);
            s2 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 8L * LANES, LITTLE), s2);
            s3 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 12L * LANES, LITTLE), s3);
            s4 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 16L * LANES, LITTLE), s4);
            s5 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 20L * LANES, LITTLE), s5);
            s6 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 24L * LANES, LITTLE), s6);
            s7 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 28L * LANES, LITTLE), s7);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
        s2.intoArray(acc, a + 2 * LANES);
        s3.intoArray(acc, a + 3 * LANES);
        s4.intoArray(acc, a + 4 * LANES);
        s5.intoArray(acc, a + 5 * LANES);
        s6.intoArray(acc, a + 6 * LANES);
        s7.intoArray(acc, a + 7 * LANES);
    }

    static void oneRowFourChunksBf16(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, PagedWorkspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        FloatVector s2 = FloatVector.fromArray(SPECIES, acc, a + 2 * LANES);
        FloatVector s3 = FloatVector.fromArray(SPECIES, acc, a + 3 * LANES);
        FloatVector s4 = FloatVector.fromArray(SPECIES, acc, a + 4 * LANES);
        FloatVector s5 = FloatVector.fromArray(SPECIES, acc, a + 5 * LANES);
        FloatVector s6 = FloatVector.fromArray(SPECIES, acc, a + 6 * LANES);
        FloatVector s7 = FloatVector.fromArray(SPECIES, acc, a + 7 * LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 2L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            IntVector x0 = IntVector.fromMemorySegment(INTS, values, offset, LITTLE);
            IntVector x1 = IntVector.fromMemorySegment(INTS, values, offset + 2L * CHUNK, LITTLE);
            IntVector x2 = IntVector.fromMemorySegment(INTS, values, offset + 4L * CHUNK, LITTLE);
            IntVector x3 = IntVector.fromMemorySegment(INTS, values, offset + 6L * CHUNK, LITTLE);
            s0 = w.fma(PagedKeyScores.evenHalves(x0), s0);
            s1 = w.fma(PagedKeyScores.oddHalves(x0), s1);
            s2 = w.fma(PagedKeyScores.evenHalves(x1), s2);
            s3 = w.fma(PagedKeyScores.oddHalves(x1), s3);
            s4 = w.fma(PagedKeyScores.evenHalves(x2), s4);
            s5 = w.fma(PagedKeyScores.oddHalves(x2), s5);
            s6 = w.fma(PagedKeyScores.evenHalves(x3), s6);
            s7 = w.fma(PagedKeyScores.oddHalves(x3), s7);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
        s2.intoArray(acc, a + 2 * LANES);
        s3.intoArray(acc, a + 3 * LANES);
        s4.intoArray(acc, a + 4 * LANES);
        s5.intoArray(acc, a + 5 * LANES);
        s6.intoArray(acc, a + 6 * LANES);
        s7.intoArray(acc, a + 7 * LANES);
    }

    static void oneRowTwoChunksF32(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, PagedWorkspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        FloatVector s2 = FloatVector.fromArray(SPECIES, acc, a + 2 * LANES);
        FloatVector s3 = FloatVector.fromArray(SPECIES, acc, a + 3 * LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 4L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            s0 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset, LITTLE), s0);
            s1 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 4L * LANES, LITTLE), s1);
            s2 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 8L * LANES, LITTLE), s2);
            s3 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 12L * LANES, LITTLE), s3);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
        s2.intoArray(acc, a + 2 * LANES);
        s3.intoArray(acc, a + 3 * LANES);
    }

    static void oneRowTwoChunksBf16(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, PagedWorkspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        FloatVector s2 = FloatVector.fromArray(SPECIES, acc, a + 2 * LANES);
        FloatVector s3 = FloatVector.fromArray(SPECIES, acc, a + 3 * LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 2L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            IntVector x = IntVector.fromMemorySegment(INTS, values, offset, LITTLE);
            IntVector y = IntVector.fromMemorySegment(INTS, values, offset + 2L * CHUNK, LITTLE);
            s0 = w.fma(PagedKeyScores.evenHalves(x), s0);
            s1 = w.fma(PagedKeyScores.oddHalves(x), s1);
            s2 = w.fma(PagedKeyScores.evenHalves(y), s2);
            s3 = w.fma(PagedKeyScores.oddHalves(y), s3);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
        s2.intoArray(acc, a + 2 * LANES);
        s3.intoArray(acc, a + 3 * LANES);
    }

    static void oneRowOneChunkF32(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, PagedWorkspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 4L * d;
        for (int j = 0; j < count; j++, p++) {
            long offset = offsets[j] + b;
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            s0 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset, LITTLE), s0);
            s1 = w.fma(FloatVector.fromMemorySegment(SPECIES, values, offset + 4L * LANES, LITTLE), s1);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
    }

    static void oneRowOneChunkBf16(MemorySegment values, long[] offsets, long head, int count, int r, int d,
            int headDim, PagedWorkspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int a = r * headDim + d;
        FloatVector s0 = FloatVector.fromArray(SPECIES, acc, a);
        FloatVector s1 = FloatVector.fromArray(SPECIES, acc, a + LANES);
        int p = r * SCORE_STRIDE;
        long b = head + 2L * d;
        for (int j = 0; j < count; j++, p++) {
            FloatVector w = FloatVector.broadcast(SPECIES, scores[p]);
            IntVector x = IntVector.fromMemorySegment(INTS, values, offsets[j] + b, LITTLE);
            s0 = w.fma(PagedKeyScores.evenHalves(x), s0);
            s1 = w.fma(PagedKeyScores.oddHalves(x), s1);
        }
        s0.intoArray(acc, a);
        s1.intoArray(acc, a + LANES);
    }

    /** Elements [from, headDim) of the accumulators (past the last whole chunk, in order), one at a time. */
    static void remainingElements(boolean bf16, MemorySegment values, long[] offsets, long head, int count,
            int firstRow, int rows, int from, int headDim, PagedWorkspace workspace) {
        float[] acc = workspace.accumulators;
        float[] scores = workspace.scores;
        int bytes = bf16 ? 2 : 4;
        for (int j = 0; j < count; j++) {
            long offset = offsets[j] + head;
            for (int d = from; d < headDim; d++) {
                long at = offset + (long) bytes * d;
                float value = bf16 ? PagedKeyScores.bf16(values, at) : values.get(F32, at);
                for (int r = firstRow; r < firstRow + rows; r++) {
                    acc[r * headDim + d] = Math.fma(scores[r * SCORE_STRIDE + j], value, acc[r * headDim + d]);
                }
            }
        }
    }
}
