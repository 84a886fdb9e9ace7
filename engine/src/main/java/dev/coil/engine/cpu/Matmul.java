package dev.coil.engine.cpu;

import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * out[t, n] = Σ_k x[t, k] · w[n, k] with w kept in its storage dtype (F32, BF16 or F16, little-endian,
 * any byte alignment).
 *
 * <p>Decode (one token) is a matrix-vector product bounded by how fast the weights stream from
 * memory: output rows are split over the cores, each core streams its rows from memory and widens
 * every weight element just before its single use.
 *
 * <p>Prefill (several tokens) reuses each weight many times: a block of rows is widened once into
 * an f32 buffer small enough for L2, then swept by every token, two rows × four tokens per step, so
 * each loaded weight vector serves four tokens and each loaded x vector serves two rows.
 */
final class Matmul {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = FLOATS.length();
    /** 16-bit lanes, as many as FLOATS has: one load of half-precision weights widens to one float vector. */
    private static final VectorSpecies<Short> HALVES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(LANES * Short.SIZE));
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());
    private static final ByteOrder LITTLE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LITTLE);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LITTLE);

    /** Weight elements (decode) and multiply-adds (prefill) one parallel piece should cover at least. */
    private static final long MIN_ELEMENTS_PER_PIECE = 1 << 16;
    private static final long MIN_WORK_PER_PIECE = 1 << 18;
    /** Bytes of widened f32 weights per prefill row block: fits L2 next to the token block and outputs. */
    static final int ROW_BLOCK_BYTES = 128 * 1024;
    private static final int TOKEN_BLOCK = 4;
    /** Rows a decode piece reads at once, each from its own quarter of the piece. */
    private static final int STREAMS = 4;
    /** f16 elements copied out and widened at a time in decode: a few rows, well inside L1. */
    private static final int F16_CHUNK = 4096;

    private final Parallel parallel;

    Matmul(Parallel parallel) {
        this.parallel = parallel;
    }

    void multiply(float[] x, int tokens, Matrix w, float[] out) {
        if (tokens <= 0 || w.rows() == 0) {
            return;
        }
        if (tokens == 1) {
            multiplyVector(x, w, out);
        } else if (tokens <= FewTokenMatmul.MAX_TOKENS && w.dtype() != DType.F16) {
            FewTokenMatmul.multiply(parallel, x, tokens, w, out);
        } else {
            multiplyTokens(x, tokens, w, out);
        }
    }

    // ---- decode: one token, weights streamed once ----

    /**
     * Each core takes a contiguous range of rows. F32 and BF16 ranges are cut into four quarters read
     * side by side: four long sequential streams keep more memory requests in flight than one, while
     * neighbouring short rows read together would look like one confused stream to the hardware
     * prefetcher; each load of x serves four rows.
     */
    private void multiplyVector(float[] x, Matrix w, float[] out) {
        int rows = w.rows();
        int cols = w.cols();
        int minRows = (int) Math.max(4, MIN_ELEMENTS_PER_PIECE / Math.max(1, cols));
        MemorySegment data = w.data();
        switch (w.dtype()) {
            case F32 -> parallel.forRange(rows, minRows, (start, end) -> dotRowsF32(data, cols, x, out, start, end));
            case BF16 -> {
                float[] xSplit = splitEvenOdd(x, cols);
                parallel.forRange(rows, minRows, (start, end) -> dotRowsBf16(data, cols, x, xSplit, out, start, end));
            }
            case F16 -> parallel.forRange(rows, minRows, (start, end) -> dotRowsF16(data, cols, x, out, start, end));
        }
    }

    /** out[r] = w[r, :] · x for r in [start, end), f32 storage. */
    private static void dotRowsF32(MemorySegment w, int cols, float[] x, float[] out, int start, int end) {
        long rowBytes = 4L * cols;
        int quarter = (end - start) / STREAMS;
        for (int r = start; r < start + quarter; r++) {
            dotF32Streams(w, r * rowBytes, quarter * rowBytes, x, cols, out, r, quarter);
        }
        for (int r = start + STREAMS * quarter; r < end; r++) {
            out[r] = dotF32(w, r * rowBytes, x, cols);
        }
    }

    /** out[r] = w[r, :] · x for r in [start, end), bf16 storage; xSplit is {@link #splitEvenOdd} of x. */
    private static void dotRowsBf16(MemorySegment w, int cols, float[] x, float[] xSplit, float[] out, int start,
            int end) {
        long rowBytes = 2L * cols;
        int quarter = (end - start) / STREAMS;
        for (int r = start; r < start + quarter; r++) {
            dotBf16Streams(w, r * rowBytes, quarter * rowBytes, x, xSplit, cols, out, r, quarter);
        }
        for (int r = start + STREAMS * quarter; r < end; r++) {
            out[r] = dotBf16(w, r * rowBytes, x, xSplit, cols);
        }
    }

    /**
     * out[r] = w[r, :] · x for r in [start, end), f16 storage. A few rows at a time are copied out in
     * one sequential burst and widened by a plain array loop, which the JIT turns into the hardware's
     * half-to-float conversion (exact for every f16 value, subnormals, infinities and NaNs included),
     * then dotted with x.
     */
    private static void dotRowsF16(MemorySegment w, int cols, float[] x, float[] out, int start, int end) {
        long rowBytes = 2L * cols;
        int rowsPerChunk = Math.max(1, F16_CHUNK / Math.max(1, cols));
        short[] halves = new short[rowsPerChunk * cols];
        float[] rows = new float[rowsPerChunk * cols];
        for (int first = start; first < end; first += rowsPerChunk) {
            int count = Math.min(rowsPerChunk, end - first);
            MemorySegment.copy(w, U16, first * rowBytes, halves, 0, count * cols);
            widenF16(halves, rows, 0, count * cols);
            for (int r = 0; r < count; r++) {
                out[first + r] = dot(x, 0, rows, r * cols, cols);
            }
        }
    }

    /**
     * out[row + j·rowStride] = w[row + j·rowStride, :] · x for j < 4: four rows a quarter of the
     * range apart ({@code streamBytes}), so each is its own sequential stream and one load of x
     * serves four rows.
     */
    private static void dotF32Streams(MemorySegment w, long offset, long streamBytes, float[] x, int cols,
            float[] out, int row, int rowStride) {
        long o0 = offset;
        long o1 = o0 + streamBytes;
        long o2 = o1 + streamBytes;
        long o3 = o2 + streamBytes;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int k = 0;
        for (; k <= cols - LANES; k += LANES) {
            FloatVector xv = FloatVector.fromArray(FLOATS, x, k);
            long b = 4L * k;
            a0 = FloatVector.fromMemorySegment(FLOATS, w, o0 + b, LITTLE).fma(xv, a0);
            a1 = FloatVector.fromMemorySegment(FLOATS, w, o1 + b, LITTLE).fma(xv, a1);
            a2 = FloatVector.fromMemorySegment(FLOATS, w, o2 + b, LITTLE).fma(xv, a2);
            a3 = FloatVector.fromMemorySegment(FLOATS, w, o3 + b, LITTLE).fma(xv, a3);
        }
        float s0 = Lanes.sum(a0);
        float s1 = Lanes.sum(a1);
        float s2 = Lanes.sum(a2);
        float s3 = Lanes.sum(a3);
        for (; k < cols; k++) {
            long b = 4L * k;
            s0 += w.get(F32, o0 + b) * x[k];
            s1 += w.get(F32, o1 + b) * x[k];
            s2 += w.get(F32, o2 + b) * x[k];
            s3 += w.get(F32, o3 + b) * x[k];
        }
        out[row] = s0;
        out[row + rowStride] = s1;
        out[row + 2 * rowStride] = s2;
        out[row + 3 * rowStride] = s3;
    }

    /** As {@link #dotF32Streams} for bf16, each load split into even and odd weights as in {@link #dotBf16}. */
    private static void dotBf16Streams(MemorySegment w, long offset, long streamBytes, float[] x, float[] xSplit,
            int cols, float[] out, int row, int rowStride) {
        long o0 = offset;
        long o1 = o0 + streamBytes;
        long o2 = o1 + streamBytes;
        long o3 = o2 + streamBytes;
        FloatVector e0 = FloatVector.zero(FLOATS);
        FloatVector e1 = e0;
        FloatVector e2 = e0;
        FloatVector e3 = e0;
        FloatVector d0 = e0;
        FloatVector d1 = e0;
        FloatVector d2 = e0;
        FloatVector d3 = e0;
        int k = 0;
        for (; k <= cols - 2 * LANES; k += 2 * LANES) {
            FloatVector xEven = FloatVector.fromArray(FLOATS, xSplit, k);
            FloatVector xOdd = FloatVector.fromArray(FLOATS, xSplit, k + LANES);
            long b = 2L * k;
            IntVector pairs = IntVector.fromMemorySegment(INTS, w, o0 + b, LITTLE);
            e0 = evenBf16(pairs).fma(xEven, e0);
            d0 = oddBf16(pairs).fma(xOdd, d0);
            pairs = IntVector.fromMemorySegment(INTS, w, o1 + b, LITTLE);
            e1 = evenBf16(pairs).fma(xEven, e1);
            d1 = oddBf16(pairs).fma(xOdd, d1);
            pairs = IntVector.fromMemorySegment(INTS, w, o2 + b, LITTLE);
            e2 = evenBf16(pairs).fma(xEven, e2);
            d2 = oddBf16(pairs).fma(xOdd, d2);
            pairs = IntVector.fromMemorySegment(INTS, w, o3 + b, LITTLE);
            e3 = evenBf16(pairs).fma(xEven, e3);
            d3 = oddBf16(pairs).fma(xOdd, d3);
        }
        float s0 = Lanes.sum(e0.add(d0));
        float s1 = Lanes.sum(e1.add(d1));
        float s2 = Lanes.sum(e2.add(d2));
        float s3 = Lanes.sum(e3.add(d3));
        for (; k < cols; k++) {
            long b = 2L * k;
            s0 += Matrix.bf16ToFloat(w.get(U16, o0 + b)) * x[k];
            s1 += Matrix.bf16ToFloat(w.get(U16, o1 + b)) * x[k];
            s2 += Matrix.bf16ToFloat(w.get(U16, o2 + b)) * x[k];
            s3 += Matrix.bf16ToFloat(w.get(U16, o3 + b)) * x[k];
        }
        out[row] = s0;
        out[row + rowStride] = s1;
        out[row + 2 * rowStride] = s2;
        out[row + 3 * rowStride] = s3;
    }

    private static float dotF32(MemorySegment w, long offset, float[] x, int cols) {
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int k = 0;
        for (; k <= cols - 4 * LANES; k += 4 * LANES) {
            long b = offset + 4L * k;
            a0 = FloatVector.fromMemorySegment(FLOATS, w, b, LITTLE).fma(FloatVector.fromArray(FLOATS, x, k), a0);
            a1 = FloatVector.fromMemorySegment(FLOATS, w, b + 4 * LANES, LITTLE)
                    .fma(FloatVector.fromArray(FLOATS, x, k + LANES), a1);
            a2 = FloatVector.fromMemorySegment(FLOATS, w, b + 8 * LANES, LITTLE)
                    .fma(FloatVector.fromArray(FLOATS, x, k + 2 * LANES), a2);
            a3 = FloatVector.fromMemorySegment(FLOATS, w, b + 12 * LANES, LITTLE)
                    .fma(FloatVector.fromArray(FLOATS, x, k + 3 * LANES), a3);
        }
        for (; k <= cols - LANES; k += LANES) {
            a0 = FloatVector.fromMemorySegment(FLOATS, w, offset + 4L * k, LITTLE)
                    .fma(FloatVector.fromArray(FLOATS, x, k), a0);
        }
        float s = Lanes.sum(a0.add(a1).add(a2.add(a3)));
        for (; k < cols; k++) {
            s += w.get(F32, offset + 4L * k) * x[k];
        }
        return s;
    }

    /**
     * One int lane holds two neighbouring bf16 values (little-endian: the even one in the low half),
     * so a shift and a mask turn one load into an f32 vector of even-indexed and one of odd-indexed
     * weights, to be multiplied by x split the same way.
     */
    private static float dotBf16(MemorySegment w, long offset, float[] x, float[] xSplit, int cols) {
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int k = 0;
        for (; k <= cols - 4 * LANES; k += 4 * LANES) {
            long b = offset + 2L * k;
            IntVector pairs = IntVector.fromMemorySegment(INTS, w, b, LITTLE);
            IntVector next = IntVector.fromMemorySegment(INTS, w, b + 4 * LANES, LITTLE);
            a0 = evenBf16(pairs).fma(FloatVector.fromArray(FLOATS, xSplit, k), a0);
            a1 = oddBf16(pairs).fma(FloatVector.fromArray(FLOATS, xSplit, k + LANES), a1);
            a2 = evenBf16(next).fma(FloatVector.fromArray(FLOATS, xSplit, k + 2 * LANES), a2);
            a3 = oddBf16(next).fma(FloatVector.fromArray(FLOATS, xSplit, k + 3 * LANES), a3);
        }
        for (; k <= cols - 2 * LANES; k += 2 * LANES) {
            IntVector pairs = IntVector.fromMemorySegment(INTS, w, offset + 2L * k, LITTLE);
            a0 = evenBf16(pairs).fma(FloatVector.fromArray(FLOATS, xSplit, k), a0);
            a1 = oddBf16(pairs).fma(FloatVector.fromArray(FLOATS, xSplit, k + LANES), a1);
        }
        float s = Lanes.sum(a0.add(a1).add(a2.add(a3)));
        for (; k < cols; k++) {
            s += Matrix.bf16ToFloat(w.get(U16, offset + 2L * k)) * x[k];
        }
        return s;
    }

    /**
     * x reordered so that each block of 2·LANES values holds its even-indexed values, then its
     * odd-indexed ones (matching {@link #evenBf16} and {@link #oddBf16}); values past the last full
     * block keep their place.
     */
    static float[] splitEvenOdd(float[] x, int cols) {
        float[] split = new float[cols];
        int block = 2 * LANES;
        int full = cols - cols % block;
        for (int start = 0; start < full; start += block) {
            for (int j = 0; j < LANES; j++) {
                split[start + j] = x[start + 2 * j];
                split[start + LANES + j] = x[start + 2 * j + 1];
            }
        }
        System.arraycopy(x, full, split, full, cols - full);
        return split;
    }

    private static FloatVector evenBf16(IntVector pairs) {
        return pairs.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector oddBf16(IntVector pairs) {
        return pairs.and(0xffff0000).reinterpretAsFloats();
    }

    /** LANES bf16 values at byte offset, widened in order: bf16 is the top half of an f32. */
    private static FloatVector bf16(MemorySegment w, long offset) {
        IntVector bits = ShortVector.fromMemorySegment(HALVES, w, offset, LITTLE)
                .convertShape(VectorOperators.S2I, INTS, 0).reinterpretAsInts();
        return bits.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /** dst[dstOffset + i] = halves[i] widened from f16, i < count (array to array, so the JIT vectorises it). */
    private static void widenF16(short[] halves, float[] dst, int dstOffset, int count) {
        for (int i = 0; i < count; i++) {
            dst[dstOffset + i] = Float.float16ToFloat(halves[i]);
        }
    }

    // ---- prefill: several tokens, weights widened once per row block ----

    private void multiplyTokens(float[] x, int tokens, Matrix w, float[] out) {
        int rows = w.rows();
        int cols = w.cols();
        int rowBlock = Math.min(rows, Math.max(2, ROW_BLOCK_BYTES / (4 * Math.max(1, cols))) & ~1);
        int rowBlocks = Math.ceilDiv(rows, rowBlock);
        // Fewer row blocks than about two per core: split the tokens too, in whole token blocks.
        int tokenBlocks = Math.ceilDiv(tokens, TOKEN_BLOCK);
        int tokenSplits = Math.min(tokenBlocks, Math.ceilDiv(2 * parallel.threads(), rowBlocks));
        int tokensPerTask = Math.ceilDiv(tokenBlocks, tokenSplits) * TOKEN_BLOCK;
        int tokenTasks = Math.ceilDiv(tokens, tokensPerTask);
        long workPerTask = (long) rowBlock * cols * Math.min(tokens, tokensPerTask);
        int minTasks = (int) Math.max(1, MIN_WORK_PER_PIECE / Math.max(1, workPerTask));
        // Tasks run row block by row block, so consecutive tasks of one piece reuse the widened block.
        parallel.forRange(rowBlocks * tokenTasks, minTasks, (start, end) -> {
            float[] widened = new float[rowBlock * cols];
            int widenedBlock = -1;
            for (int task = start; task < end; task++) {
                int block = task / tokenTasks;
                int rowStart = block * rowBlock;
                int rowCount = Math.min(rowBlock, rows - rowStart);
                if (block != widenedBlock) {
                    widenRows(w, rowStart, rowCount, widened);
                    widenedBlock = block;
                }
                int tokenStart = task % tokenTasks * tokensPerTask;
                int tokenEnd = Math.min(tokens, tokenStart + tokensPerTask);
                multiplyBlock(x, tokenStart, tokenEnd, widened, rowStart, rowCount, rows, cols, out);
            }
        });
    }

    /** Rows [rowStart, rowStart + count) of w as f32 into dst, row-major [count, cols]. */
    static void widenRows(Matrix w, int rowStart, int count, float[] dst) {
        MemorySegment data = w.data();
        int n = count * w.cols();
        int bound = FLOATS.loopBound(n);
        switch (w.dtype()) {
            case F32 -> {
                long base = 4L * rowStart * w.cols();
                MemorySegment.copy(data, F32, base, dst, 0, n);
            }
            case BF16 -> {
                long base = 2L * rowStart * w.cols();
                for (int i = 0; i < bound; i += LANES) {
                    bf16(data, base + 2L * i).intoArray(dst, i);
                }
                for (int i = bound; i < n; i++) {
                    dst[i] = Matrix.bf16ToFloat(data.get(U16, base + 2L * i));
                }
            }
            case F16 -> {
                long base = 2L * rowStart * w.cols();
                short[] halves = new short[Math.min(n, 4096)];
                for (int i = 0; i < n; i += halves.length) {
                    int chunk = Math.min(halves.length, n - i);
                    MemorySegment.copy(data, U16, base + 2L * i, halves, 0, chunk);
                    widenF16(halves, dst, i, chunk);
                }
            }
        }
    }

    /** out[t, rowStart + r] for t in [tokenStart, tokenEnd), r < rowCount, from widened rows w [rowCount, cols]. */
    private static void multiplyBlock(float[] x, int tokenStart, int tokenEnd, float[] w, int rowStart, int rowCount,
            int rows, int cols, float[] out) {
        int t = tokenStart;
        for (; t + TOKEN_BLOCK <= tokenEnd; t += TOKEN_BLOCK) {
            int r = 0;
            for (; r + 2 <= rowCount; r += 2) {
                tile2x4(x, t, w, r, rowStart, rows, cols, out);
            }
            if (r < rowCount) {
                for (int u = t; u < t + TOKEN_BLOCK; u++) {
                    out[u * rows + rowStart + r] = dot(x, u * cols, w, r * cols, cols);
                }
            }
        }
        for (; t < tokenEnd; t++) {
            for (int r = 0; r < rowCount; r++) {
                out[t * rows + rowStart + r] = dot(x, t * cols, w, r * cols, cols);
            }
        }
    }

    /** Two widened rows (r, r+1) × four tokens (t .. t+3): eight accumulators. */
    private static void tile2x4(float[] x, int t, float[] w, int r, int rowStart, int rows, int cols, float[] out) {
        int x0 = t * cols;
        int x1 = x0 + cols;
        int x2 = x1 + cols;
        int x3 = x2 + cols;
        int w0 = r * cols;
        int w1 = w0 + cols;
        FloatVector a00 = FloatVector.zero(FLOATS);
        FloatVector a01 = a00;
        FloatVector a02 = a00;
        FloatVector a03 = a00;
        FloatVector a10 = a00;
        FloatVector a11 = a00;
        FloatVector a12 = a00;
        FloatVector a13 = a00;
        int bound = FLOATS.loopBound(cols);
        for (int k = 0; k < bound; k += LANES) {
            FloatVector v0 = FloatVector.fromArray(FLOATS, w, w0 + k);
            FloatVector v1 = FloatVector.fromArray(FLOATS, w, w1 + k);
            FloatVector u = FloatVector.fromArray(FLOATS, x, x0 + k);
            a00 = v0.fma(u, a00);
            a10 = v1.fma(u, a10);
            u = FloatVector.fromArray(FLOATS, x, x1 + k);
            a01 = v0.fma(u, a01);
            a11 = v1.fma(u, a11);
            u = FloatVector.fromArray(FLOATS, x, x2 + k);
            a02 = v0.fma(u, a02);
            a12 = v1.fma(u, a12);
            u = FloatVector.fromArray(FLOATS, x, x3 + k);
            a03 = v0.fma(u, a03);
            a13 = v1.fma(u, a13);
        }
        float s00 = Lanes.sum(a00);
        float s01 = Lanes.sum(a01);
        float s02 = Lanes.sum(a02);
        float s03 = Lanes.sum(a03);
        float s10 = Lanes.sum(a10);
        float s11 = Lanes.sum(a11);
        float s12 = Lanes.sum(a12);
        float s13 = Lanes.sum(a13);
        for (int k = bound; k < cols; k++) {
            float v0 = w[w0 + k];
            float v1 = w[w1 + k];
            s00 += v0 * x[x0 + k];
            s01 += v0 * x[x1 + k];
            s02 += v0 * x[x2 + k];
            s03 += v0 * x[x3 + k];
            s10 += v1 * x[x0 + k];
            s11 += v1 * x[x1 + k];
            s12 += v1 * x[x2 + k];
            s13 += v1 * x[x3 + k];
        }
        int o = t * rows + rowStart + r;
        out[o] = s00;
        out[o + 1] = s10;
        out[o + rows] = s01;
        out[o + rows + 1] = s11;
        out[o + 2 * rows] = s02;
        out[o + 2 * rows + 1] = s12;
        out[o + 3 * rows] = s03;
        out[o + 3 * rows + 1] = s13;
    }

    /** a[aOffset ..] · b[bOffset ..] over n elements. */
    private static float dot(float[] a, int aOffset, float[] b, int bOffset, int n) {
        int bound = FLOATS.loopBound(n);
        FloatVector s0 = FloatVector.zero(FLOATS);
        FloatVector s1 = s0;
        int k = 0;
        for (; k + 2 * LANES <= bound; k += 2 * LANES) {
            s0 = FloatVector.fromArray(FLOATS, a, aOffset + k).fma(FloatVector.fromArray(FLOATS, b, bOffset + k), s0);
            s1 = FloatVector.fromArray(FLOATS, a, aOffset + k + LANES)
                    .fma(FloatVector.fromArray(FLOATS, b, bOffset + k + LANES), s1);
        }
        for (; k < bound; k += LANES) {
            s0 = FloatVector.fromArray(FLOATS, a, aOffset + k).fma(FloatVector.fromArray(FLOATS, b, bOffset + k), s0);
        }
        float s = Lanes.sum(s0.add(s1));
        for (; k < n; k++) {
            s += a[aOffset + k] * b[bOffset + k];
        }
        return s;
    }
}
