package dev.coil.engine.cpu;

import dev.coil.engine.ops.Matrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * out = x · wᵀ for a handful of tokens: a batched decode step (one token from each of several
 * sequences). Like single-token decode it is bound by reading the weights, so each weight row is
 * streamed from memory once and, while it sits in L1, dotted with every token's x, four tokens per
 * pass. Widening whole row blocks to f32 first (the prefill path) would cost more than it saves at
 * these sizes.
 */
final class FewTokenMatmul {

    /** Most tokens this path takes; more go to the prefill path, where weight reuse pays for widening. */
    static final int MAX_TOKENS = 16;

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = FLOATS.length();
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());
    private static final ByteOrder LITTLE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LITTLE);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LITTLE);
    private static final long MIN_ELEMENTS_PER_PIECE = 1 << 15;

    private FewTokenMatmul() {
    }

    /** w is F32 or BF16; x: [tokens, cols]; out: [tokens, rows]. */
    static void multiply(Parallel parallel, float[] x, int tokens, Matrix w, float[] out) {
        int rows = w.rows();
        int cols = w.cols();
        float[][] inputs = new float[tokens][];
        for (int t = 0; t < tokens; t++) {
            float[] row = new float[cols];
            System.arraycopy(x, t * cols, row, 0, cols);
            inputs[t] = w.dtype() == dev.coil.engine.load.DType.BF16 ? Matmul.splitEvenOdd(row, cols) : row;
        }
        int minRows = (int) Math.max(4, MIN_ELEMENTS_PER_PIECE / Math.max(1, (long) cols * tokens));
        MemorySegment data = w.data();
        boolean bf16 = w.dtype() == dev.coil.engine.load.DType.BF16;
        parallel.forRange(rows, minRows, (start, end) -> {
            for (int r = start; r < end; r++) {
                for (int t0 = 0; t0 < tokens; t0 += 4) {
                    if (bf16) {
                        rowBf16(data, 2L * cols * r, cols, inputs, x, t0, tokens, out, rows, r);
                    } else {
                        rowF32(data, 4L * cols * r, cols, inputs, t0, tokens, out, rows, r);
                    }
                }
            }
        });
    }

    /** out[t, r] for t in [t0, min(t0 + 4, tokens)): one bf16 row against four tokens' split x. */
    private static void rowBf16(MemorySegment w, long offset, int cols, float[][] xs, float[] x, int t0, int tokens,
            float[] out, int rows, int r) {
        float[] x0 = xs[t0];
        float[] x1 = xs[Math.min(t0 + 1, tokens - 1)];
        float[] x2 = xs[Math.min(t0 + 2, tokens - 1)];
        float[] x3 = xs[Math.min(t0 + 3, tokens - 1)];
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
            IntVector pairs = IntVector.fromMemorySegment(INTS, w, offset + 2L * k, LITTLE);
            FloatVector even = pairs.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector odd = pairs.and(0xffff0000).reinterpretAsFloats();
            e0 = even.fma(FloatVector.fromArray(FLOATS, x0, k), e0);
            d0 = odd.fma(FloatVector.fromArray(FLOATS, x0, k + LANES), d0);
            e1 = even.fma(FloatVector.fromArray(FLOATS, x1, k), e1);
            d1 = odd.fma(FloatVector.fromArray(FLOATS, x1, k + LANES), d1);
            e2 = even.fma(FloatVector.fromArray(FLOATS, x2, k), e2);
            d2 = odd.fma(FloatVector.fromArray(FLOATS, x2, k + LANES), d2);
            e3 = even.fma(FloatVector.fromArray(FLOATS, x3, k), e3);
            d3 = odd.fma(FloatVector.fromArray(FLOATS, x3, k + LANES), d3);
        }
        float[] sums = {Lanes.sum(e0.add(d0)), Lanes.sum(e1.add(d1)),
            Lanes.sum(e2.add(d2)), Lanes.sum(e3.add(d3))};
        int cols0 = cols;
        for (int j = 0; j < 4 && t0 + j < tokens; j++) {
            float s = sums[j];
            for (int kk = k; kk < cols0; kk++) {
                s += Matrix.bf16ToFloat(w.get(U16, offset + 2L * kk)) * x[(t0 + j) * cols0 + kk];
            }
            out[(t0 + j) * rows + r] = s;
        }
    }

    /** out[t, r] for t in [t0, min(t0 + 4, tokens)): one f32 row against four tokens' x. */
    private static void rowF32(MemorySegment w, long offset, int cols, float[][] xs, int t0, int tokens, float[] out,
            int rows, int r) {
        float[] x0 = xs[t0];
        float[] x1 = xs[Math.min(t0 + 1, tokens - 1)];
        float[] x2 = xs[Math.min(t0 + 2, tokens - 1)];
        float[] x3 = xs[Math.min(t0 + 3, tokens - 1)];
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int k = 0;
        for (; k <= cols - LANES; k += LANES) {
            FloatVector weights = FloatVector.fromMemorySegment(FLOATS, w, offset + 4L * k, LITTLE);
            a0 = weights.fma(FloatVector.fromArray(FLOATS, x0, k), a0);
            a1 = weights.fma(FloatVector.fromArray(FLOATS, x1, k), a1);
            a2 = weights.fma(FloatVector.fromArray(FLOATS, x2, k), a2);
            a3 = weights.fma(FloatVector.fromArray(FLOATS, x3, k), a3);
        }
        float[] sums = {Lanes.sum(a0), Lanes.sum(a1),
            Lanes.sum(a2), Lanes.sum(a3)};
        float[][] rowsX = {x0, x1, x2, x3};
        for (int j = 0; j < 4 && t0 + j < tokens; j++) {
            float s = sums[j];
            for (int kk = k; kk < cols; kk++) {
                s += w.get(F32, offset + 4L * kk) * rowsX[j][kk];
            }
            out[(t0 + j) * rows + r] = s;
        }
    }
}
