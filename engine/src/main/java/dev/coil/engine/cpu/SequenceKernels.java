package dev.coil.engine.cpu;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector building blocks of the sequence ops (flash attention, SSD scan): a register-blocked product
 * of small row-major tiles, and exp over a whole vector.
 */
final class SequenceKernels {

    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();

    private SequenceKernels() {}

    /**
     * out[r, c] = (accumulate ? out[r, c] : 0) + Σ_{k < depth} a[r, k] · b[k, c] for r < rows, c < cols.
     * Each tile is row-major at its offset with its own row stride; out must not overlap a or b.
     */
    static void multiplyAdd(int rows, int cols, int depth, float[] a, int aOffset, int aStride, float[] b,
            int bOffset, int bStride, float[] out, int outOffset, int outStride, boolean accumulate) {
        int r = 0;
        for (; r + 6 <= rows; r += 6) {
            int c = 0;
            for (; c + 2 * LANES <= cols; c += 2 * LANES) {
                sixRowsTwoVectors(r, c, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset, outStride,
                        accumulate);
            }
            remainingColumns(r, r + 6, c, cols, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset,
                    outStride, accumulate);
        }
        for (; r + 4 <= rows; r += 4) {
            int c = 0;
            for (; c + 2 * LANES <= cols; c += 2 * LANES) {
                fourRowsTwoVectors(r, c, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset, outStride,
                        accumulate);
            }
            remainingColumns(r, r + 4, c, cols, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset,
                    outStride, accumulate);
        }
        // Three or two left-over rows share each load of b (a decode step's GQA group is often 3 or 2 rows).
        if (rows - r == 3) {
            int c = 0;
            for (; c + 4 * LANES <= cols; c += 4 * LANES) {
                threeRowsFourVectors(r, c, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset, outStride,
                        accumulate);
            }
            for (; c + 2 * LANES <= cols; c += 2 * LANES) {
                threeRowsTwoVectors(r, c, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset, outStride,
                        accumulate);
            }
            remainingColumns(r, r + 3, c, cols, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset,
                    outStride, accumulate);
            return;
        }
        if (rows - r == 2) {
            int c = 0;
            for (; c + 4 * LANES <= cols; c += 4 * LANES) {
                twoRowsFourVectors(r, c, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset, outStride,
                        accumulate);
            }
            remainingColumns(r, r + 2, c, cols, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset,
                    outStride, accumulate);
            return;
        }
        // A left-over row takes four vectors of columns at a time, so that four accumulator chains still overlap.
        for (; r < rows; r++) {
            int c = 0;
            for (; c + 4 * LANES <= cols; c += 4 * LANES) {
                oneRowFourVectors(r, c, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset, outStride,
                        accumulate);
            }
            remainingColumns(r, r + 1, c, cols, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset,
                    outStride, accumulate);
        }
    }

    /** Columns [firstColumn, endColumn) of rows [firstRow, endRow): one vector per row at a time, then scalars. */
    private static void remainingColumns(int firstRow, int endRow, int firstColumn, int endColumn, int depth,
            float[] a, int aOffset, int aStride, float[] b, int bOffset, int bStride, float[] out, int outOffset,
            int outStride, boolean accumulate) {
        for (int r = firstRow; r < endRow; r++) {
            int c = firstColumn;
            for (; c + LANES <= endColumn; c += LANES) {
                oneRowOneVector(r, c, depth, a, aOffset, aStride, b, bOffset, bStride, out, outOffset, outStride,
                        accumulate);
            }
            int aRow = aOffset + r * aStride;
            for (; c < endColumn; c++) {
                float sum = accumulate ? out[outOffset + r * outStride + c] : 0f;
                for (int k = 0; k < depth; k++) {
                    sum = Math.fma(a[aRow + k], b[bOffset + k * bStride + c], sum);
                }
                out[outOffset + r * outStride + c] = sum;
            }
        }
    }

    private static void sixRowsTwoVectors(int r, int c, int depth, float[] a, int aOffset, int aStride, float[] b,
            int bOffset, int bStride, float[] out, int outOffset, int outStride, boolean accumulate) {
        int o0 = outOffset + r * outStride + c;
        int o1 = o0 + outStride;
        int o2 = o1 + outStride;
        int o3 = o2 + outStride;
        int o4 = o3 + outStride;
        int o5 = o4 + outStride;
        FloatVector s00, s01, s10, s11, s20, s21, s30, s31, s40, s41, s50, s51;
        if (accumulate) {
            s00 = FloatVector.fromArray(SPECIES, out, o0);
            s01 = FloatVector.fromArray(SPECIES, out, o0 + LANES);
            s10 = FloatVector.fromArray(SPECIES, out, o1);
            s11 = FloatVector.fromArray(SPECIES, out, o1 + LANES);
            s20 = FloatVector.fromArray(SPECIES, out, o2);
            s21 = FloatVector.fromArray(SPECIES, out, o2 + LANES);
            s30 = FloatVector.fromArray(SPECIES, out, o3);
            s31 = FloatVector.fromArray(SPECIES, out, o3 + LANES);
            s40 = FloatVector.fromArray(SPECIES, out, o4);
            s41 = FloatVector.fromArray(SPECIES, out, o4 + LANES);
            s50 = FloatVector.fromArray(SPECIES, out, o5);
            s51 = FloatVector.fromArray(SPECIES, out, o5 + LANES);
        } else {
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = s50 = s51 = FloatVector.zero(SPECIES);
        }
        int a0 = aOffset + r * aStride;
        int a1 = a0 + aStride;
        int a2 = a1 + aStride;
        int a3 = a2 + aStride;
        int a4 = a3 + aStride;
        int a5 = a4 + aStride;
        int bRow = bOffset + c;
        for (int k = 0; k < depth; k++, bRow += bStride) {
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bRow);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bRow + LANES);
            FloatVector w = FloatVector.broadcast(SPECIES, a[a0 + k]);
            s00 = w.fma(b0, s00);
            s01 = w.fma(b1, s01);
            w = FloatVector.broadcast(SPECIES, a[a1 + k]);
            s10 = w.fma(b0, s10);
            s11 = w.fma(b1, s11);
            w = FloatVector.broadcast(SPECIES, a[a2 + k]);
            s20 = w.fma(b0, s20);
            s21 = w.fma(b1, s21);
            w = FloatVector.broadcast(SPECIES, a[a3 + k]);
            s30 = w.fma(b0, s30);
            s31 = w.fma(b1, s31);
            w = FloatVector.broadcast(SPECIES, a[a4 + k]);
            s40 = w.fma(b0, s40);
            s41 = w.fma(b1, s41);
            w = FloatVector.broadcast(SPECIES, a[a5 + k]);
            s50 = w.fma(b0, s50);
            s51 = w.fma(b1, s51);
        }
        s00.intoArray(out, o0);
        s01.intoArray(out, o0 + LANES);
        s10.intoArray(out, o1);
        s11.intoArray(out, o1 + LANES);
        s20.intoArray(out, o2);
        s21.intoArray(out, o2 + LANES);
        s30.intoArray(out, o3);
        s31.intoArray(out, o3 + LANES);
        s40.intoArray(out, o4);
        s41.intoArray(out, o4 + LANES);
        s50.intoArray(out, o5);
        s51.intoArray(out, o5 + LANES);
    }

    private static void fourRowsTwoVectors(int r, int c, int depth, float[] a, int aOffset, int aStride, float[] b,
            int bOffset, int bStride, float[] out, int outOffset, int outStride, boolean accumulate) {
        int o0 = outOffset + r * outStride + c;
        int o1 = o0 + outStride;
        int o2 = o1 + outStride;
        int o3 = o2 + outStride;
        FloatVector s00, s01, s10, s11, s20, s21, s30, s31;
        if (accumulate) {
            s00 = FloatVector.fromArray(SPECIES, out, o0);
            s01 = FloatVector.fromArray(SPECIES, out, o0 + LANES);
            s10 = FloatVector.fromArray(SPECIES, out, o1);
            s11 = FloatVector.fromArray(SPECIES, out, o1 + LANES);
            s20 = FloatVector.fromArray(SPECIES, out, o2);
            s21 = FloatVector.fromArray(SPECIES, out, o2 + LANES);
            s30 = FloatVector.fromArray(SPECIES, out, o3);
            s31 = FloatVector.fromArray(SPECIES, out, o3 + LANES);
        } else {
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = FloatVector.zero(SPECIES);
        }
        int a0 = aOffset + r * aStride;
        int a1 = a0 + aStride;
        int a2 = a1 + aStride;
        int a3 = a2 + aStride;
        int bRow = bOffset + c;
        for (int k = 0; k < depth; k++, bRow += bStride) {
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bRow);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bRow + LANES);
            FloatVector w = FloatVector.broadcast(SPECIES, a[a0 + k]);
            s00 = w.fma(b0, s00);
            s01 = w.fma(b1, s01);
            w = FloatVector.broadcast(SPECIES, a[a1 + k]);
            s10 = w.fma(b0, s10);
            s11 = w.fma(b1, s11);
            w = FloatVector.broadcast(SPECIES, a[a2 + k]);
            s20 = w.fma(b0, s20);
            s21 = w.fma(b1, s21);
            w = FloatVector.broadcast(SPECIES, a[a3 + k]);
            s30 = w.fma(b0, s30);
            s31 = w.fma(b1, s31);
        }
        s00.intoArray(out, o0);
        s01.intoArray(out, o0 + LANES);
        s10.intoArray(out, o1);
        s11.intoArray(out, o1 + LANES);
        s20.intoArray(out, o2);
        s21.intoArray(out, o2 + LANES);
        s30.intoArray(out, o3);
        s31.intoArray(out, o3 + LANES);
    }

    private static void threeRowsTwoVectors(int r, int c, int depth, float[] a, int aOffset, int aStride, float[] b,
            int bOffset, int bStride, float[] out, int outOffset, int outStride, boolean accumulate) {
        int o0 = outOffset + r * outStride + c;
        int o1 = o0 + outStride;
        int o2 = o1 + outStride;
        FloatVector s00, s01, s10, s11, s20, s21;
        if (accumulate) {
            s00 = FloatVector.fromArray(SPECIES, out, o0);
            s01 = FloatVector.fromArray(SPECIES, out, o0 + LANES);
            s10 = FloatVector.fromArray(SPECIES, out, o1);
            s11 = FloatVector.fromArray(SPECIES, out, o1 + LANES);
            s20 = FloatVector.fromArray(SPECIES, out, o2);
            s21 = FloatVector.fromArray(SPECIES, out, o2 + LANES);
        } else {
            s00 = s01 = s10 = s11 = s20 = s21 = FloatVector.zero(SPECIES);
        }
        int a0 = aOffset + r * aStride;
        int a1 = a0 + aStride;
        int a2 = a1 + aStride;
        int bRow = bOffset + c;
        for (int k = 0; k < depth; k++, bRow += bStride) {
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bRow);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bRow + LANES);
            FloatVector w = FloatVector.broadcast(SPECIES, a[a0 + k]);
            s00 = w.fma(b0, s00);
            s01 = w.fma(b1, s01);
            w = FloatVector.broadcast(SPECIES, a[a1 + k]);
            s10 = w.fma(b0, s10);
            s11 = w.fma(b1, s11);
            w = FloatVector.broadcast(SPECIES, a[a2 + k]);
            s20 = w.fma(b0, s20);
            s21 = w.fma(b1, s21);
        }
        s00.intoArray(out, o0);
        s01.intoArray(out, o0 + LANES);
        s10.intoArray(out, o1);
        s11.intoArray(out, o1 + LANES);
        s20.intoArray(out, o2);
        s21.intoArray(out, o2 + LANES);
    }

    /** Twelve accumulator chains: enough to cover the fma latency, and with the three weights all 16 AVX2 registers. */
    private static void threeRowsFourVectors(int r, int c, int depth, float[] a, int aOffset, int aStride, float[] b,
            int bOffset, int bStride, float[] out, int outOffset, int outStride, boolean accumulate) {
        int o0 = outOffset + r * outStride + c;
        int o1 = o0 + outStride;
        int o2 = o1 + outStride;
        FloatVector s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23;
        if (accumulate) {
            s00 = FloatVector.fromArray(SPECIES, out, o0);
            s01 = FloatVector.fromArray(SPECIES, out, o0 + LANES);
            s02 = FloatVector.fromArray(SPECIES, out, o0 + 2 * LANES);
            s03 = FloatVector.fromArray(SPECIES, out, o0 + 3 * LANES);
            s10 = FloatVector.fromArray(SPECIES, out, o1);
            s11 = FloatVector.fromArray(SPECIES, out, o1 + LANES);
            s12 = FloatVector.fromArray(SPECIES, out, o1 + 2 * LANES);
            s13 = FloatVector.fromArray(SPECIES, out, o1 + 3 * LANES);
            s20 = FloatVector.fromArray(SPECIES, out, o2);
            s21 = FloatVector.fromArray(SPECIES, out, o2 + LANES);
            s22 = FloatVector.fromArray(SPECIES, out, o2 + 2 * LANES);
            s23 = FloatVector.fromArray(SPECIES, out, o2 + 3 * LANES);
        } else {
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = FloatVector.zero(SPECIES);
        }
        int a0 = aOffset + r * aStride;
        int a1 = a0 + aStride;
        int a2 = a1 + aStride;
        int bRow = bOffset + c;
        for (int k = 0; k < depth; k++, bRow += bStride) {
            FloatVector w0 = FloatVector.broadcast(SPECIES, a[a0 + k]);
            FloatVector w1 = FloatVector.broadcast(SPECIES, a[a1 + k]);
            FloatVector w2 = FloatVector.broadcast(SPECIES, a[a2 + k]);
            FloatVector v = FloatVector.fromArray(SPECIES, b, bRow);
            s00 = w0.fma(v, s00);
            s10 = w1.fma(v, s10);
            s20 = w2.fma(v, s20);
            v = FloatVector.fromArray(SPECIES, b, bRow + LANES);
            s01 = w0.fma(v, s01);
            s11 = w1.fma(v, s11);
            s21 = w2.fma(v, s21);
            v = FloatVector.fromArray(SPECIES, b, bRow + 2 * LANES);
            s02 = w0.fma(v, s02);
            s12 = w1.fma(v, s12);
            s22 = w2.fma(v, s22);
            v = FloatVector.fromArray(SPECIES, b, bRow + 3 * LANES);
            s03 = w0.fma(v, s03);
            s13 = w1.fma(v, s13);
            s23 = w2.fma(v, s23);
        }
        s00.intoArray(out, o0);
        s01.intoArray(out, o0 + LANES);
        s02.intoArray(out, o0 + 2 * LANES);
        s03.intoArray(out, o0 + 3 * LANES);
        s10.intoArray(out, o1);
        s11.intoArray(out, o1 + LANES);
        s12.intoArray(out, o1 + 2 * LANES);
        s13.intoArray(out, o1 + 3 * LANES);
        s20.intoArray(out, o2);
        s21.intoArray(out, o2 + LANES);
        s22.intoArray(out, o2 + 2 * LANES);
        s23.intoArray(out, o2 + 3 * LANES);
    }

    private static void twoRowsFourVectors(int r, int c, int depth, float[] a, int aOffset, int aStride, float[] b,
            int bOffset, int bStride, float[] out, int outOffset, int outStride, boolean accumulate) {
        int o0 = outOffset + r * outStride + c;
        int o1 = o0 + outStride;
        FloatVector s00, s01, s02, s03, s10, s11, s12, s13;
        if (accumulate) {
            s00 = FloatVector.fromArray(SPECIES, out, o0);
            s01 = FloatVector.fromArray(SPECIES, out, o0 + LANES);
            s02 = FloatVector.fromArray(SPECIES, out, o0 + 2 * LANES);
            s03 = FloatVector.fromArray(SPECIES, out, o0 + 3 * LANES);
            s10 = FloatVector.fromArray(SPECIES, out, o1);
            s11 = FloatVector.fromArray(SPECIES, out, o1 + LANES);
            s12 = FloatVector.fromArray(SPECIES, out, o1 + 2 * LANES);
            s13 = FloatVector.fromArray(SPECIES, out, o1 + 3 * LANES);
        } else {
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = FloatVector.zero(SPECIES);
        }
        int a0 = aOffset + r * aStride;
        int a1 = a0 + aStride;
        int bRow = bOffset + c;
        for (int k = 0; k < depth; k++, bRow += bStride) {
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bRow);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bRow + LANES);
            FloatVector b2 = FloatVector.fromArray(SPECIES, b, bRow + 2 * LANES);
            FloatVector b3 = FloatVector.fromArray(SPECIES, b, bRow + 3 * LANES);
            FloatVector w = FloatVector.broadcast(SPECIES, a[a0 + k]);
            s00 = w.fma(b0, s00);
            s01 = w.fma(b1, s01);
            s02 = w.fma(b2, s02);
            s03 = w.fma(b3, s03);
            w = FloatVector.broadcast(SPECIES, a[a1 + k]);
            s10 = w.fma(b0, s10);
            s11 = w.fma(b1, s11);
            s12 = w.fma(b2, s12);
            s13 = w.fma(b3, s13);
        }
        s00.intoArray(out, o0);
        s01.intoArray(out, o0 + LANES);
        s02.intoArray(out, o0 + 2 * LANES);
        s03.intoArray(out, o0 + 3 * LANES);
        s10.intoArray(out, o1);
        s11.intoArray(out, o1 + LANES);
        s12.intoArray(out, o1 + 2 * LANES);
        s13.intoArray(out, o1 + 3 * LANES);
    }

    private static void oneRowFourVectors(int r, int c, int depth, float[] a, int aOffset, int aStride, float[] b,
            int bOffset, int bStride, float[] out, int outOffset, int outStride, boolean accumulate) {
        int o = outOffset + r * outStride + c;
        FloatVector s0, s1, s2, s3;
        if (accumulate) {
            s0 = FloatVector.fromArray(SPECIES, out, o);
            s1 = FloatVector.fromArray(SPECIES, out, o + LANES);
            s2 = FloatVector.fromArray(SPECIES, out, o + 2 * LANES);
            s3 = FloatVector.fromArray(SPECIES, out, o + 3 * LANES);
        } else {
            s0 = s1 = s2 = s3 = FloatVector.zero(SPECIES);
        }
        int aRow = aOffset + r * aStride;
        int bRow = bOffset + c;
        for (int k = 0; k < depth; k++, bRow += bStride) {
            FloatVector w = FloatVector.broadcast(SPECIES, a[aRow + k]);
            s0 = w.fma(FloatVector.fromArray(SPECIES, b, bRow), s0);
            s1 = w.fma(FloatVector.fromArray(SPECIES, b, bRow + LANES), s1);
            s2 = w.fma(FloatVector.fromArray(SPECIES, b, bRow + 2 * LANES), s2);
            s3 = w.fma(FloatVector.fromArray(SPECIES, b, bRow + 3 * LANES), s3);
        }
        s0.intoArray(out, o);
        s1.intoArray(out, o + LANES);
        s2.intoArray(out, o + 2 * LANES);
        s3.intoArray(out, o + 3 * LANES);
    }

    private static void oneRowOneVector(int r, int c, int depth, float[] a, int aOffset, int aStride, float[] b,
            int bOffset, int bStride, float[] out, int outOffset, int outStride, boolean accumulate) {
        int o = outOffset + r * outStride + c;
        FloatVector s = accumulate ? FloatVector.fromArray(SPECIES, out, o) : FloatVector.zero(SPECIES);
        int aRow = aOffset + r * aStride;
        int bRow = bOffset + c;
        for (int k = 0; k < depth; k++, bRow += bStride) {
            s = FloatVector.broadcast(SPECIES, a[aRow + k]).fma(FloatVector.fromArray(SPECIES, b, bRow), s);
        }
        s.intoArray(out, o);
    }

    /** values[offset + i] *= factor for i < count. */
    static void scale(float[] values, int offset, int count, float factor) {
        int i = 0;
        for (; i + LANES <= count; i += LANES) {
            FloatVector.fromArray(SPECIES, values, offset + i).mul(factor).intoArray(values, offset + i);
        }
        for (; i < count; i++) {
            values[offset + i] *= factor;
        }
    }

    /** Σ a[aOffset + i] · b[bOffset + i] for i < count. */
    static float dot(float[] a, int aOffset, float[] b, int bOffset, int count) {
        FloatVector sum0 = FloatVector.zero(SPECIES);
        FloatVector sum1 = FloatVector.zero(SPECIES);
        int i = 0;
        for (; i + 2 * LANES <= count; i += 2 * LANES) {
            sum0 = FloatVector.fromArray(SPECIES, a, aOffset + i)
                    .fma(FloatVector.fromArray(SPECIES, b, bOffset + i), sum0);
            sum1 = FloatVector.fromArray(SPECIES, a, aOffset + i + LANES)
                    .fma(FloatVector.fromArray(SPECIES, b, bOffset + i + LANES), sum1);
        }
        for (; i + LANES <= count; i += LANES) {
            sum0 = FloatVector.fromArray(SPECIES, a, aOffset + i)
                    .fma(FloatVector.fromArray(SPECIES, b, bOffset + i), sum0);
        }
        float sum = Lanes.sum(sum0.add(sum1));
        for (; i < count; i++) {
            sum = Math.fma(a[aOffset + i], b[bOffset + i], sum);
        }
        return sum;
    }

    /**
     * out[outOffset + m] = Σ_i a[aOffset + i] · b[bOffset + m·bStride + i] for m < 4, i < count: four
     * dot products sharing one vector, with four independent accumulator chains.
     */
    static void dotFour(float[] a, int aOffset, float[] b, int bOffset, int bStride, int count, float[] out,
            int outOffset) {
        int b1 = bOffset + bStride;
        int b2 = b1 + bStride;
        int b3 = b2 + bStride;
        FloatVector sum0 = FloatVector.zero(SPECIES);
        FloatVector sum1 = FloatVector.zero(SPECIES);
        FloatVector sum2 = FloatVector.zero(SPECIES);
        FloatVector sum3 = FloatVector.zero(SPECIES);
        int i = 0;
        for (; i + LANES <= count; i += LANES) {
            FloatVector v = FloatVector.fromArray(SPECIES, a, aOffset + i);
            sum0 = v.fma(FloatVector.fromArray(SPECIES, b, bOffset + i), sum0);
            sum1 = v.fma(FloatVector.fromArray(SPECIES, b, b1 + i), sum1);
            sum2 = v.fma(FloatVector.fromArray(SPECIES, b, b2 + i), sum2);
            sum3 = v.fma(FloatVector.fromArray(SPECIES, b, b3 + i), sum3);
        }
        float total0 = Lanes.sum(sum0);
        float total1 = Lanes.sum(sum1);
        float total2 = Lanes.sum(sum2);
        float total3 = Lanes.sum(sum3);
        for (; i < count; i++) {
            float value = a[aOffset + i];
            total0 = Math.fma(value, b[bOffset + i], total0);
            total1 = Math.fma(value, b[b1 + i], total1);
            total2 = Math.fma(value, b[b2 + i], total2);
            total3 = Math.fma(value, b[b3 + i], total3);
        }
        out[outOffset] = total0;
        out[outOffset + 1] = total1;
        out[outOffset + 2] = total2;
        out[outOffset + 3] = total3;
    }

    /** Whether {@link #dotEight} is available: its lane-sum transpose is written for eight-lane vectors. */
    static final boolean EIGHT_LANES = LANES == 8;

    private static final VectorShuffle<Float> SWAP_ONES = swapShuffle(1);
    private static final VectorShuffle<Float> SWAP_TWOS = swapShuffle(2);
    private static final VectorShuffle<Float> SWAP_FOURS = swapShuffle(4);
    private static final VectorMask<Float> ODD_ONES = laneBitMask(1);
    private static final VectorMask<Float> ODD_TWOS = laneBitMask(2);
    private static final VectorMask<Float> ODD_FOURS = laneBitMask(4);
    private static final VectorShuffle<Float> SWAP_EIGHTS = swapShuffle(8);

    /**
     * out[outOffset + m] = Σ_i a[aOffset + i] · b[bOffset + m·bStride + i] for m < 8, i < count (needs
     * {@link #EIGHT_LANES}). The eight lane-wise partial sums are reduced together by a three-level
     * transpose-and-add, which costs about as much as one horizontal reduction instead of eight.
     */
    static void dotEight(float[] a, int aOffset, float[] b, int bOffset, int bStride, int count, float[] out,
            int outOffset) {
        int b1 = bOffset + bStride;
        int b2 = b1 + bStride;
        int b3 = b2 + bStride;
        int b4 = b3 + bStride;
        int b5 = b4 + bStride;
        int b6 = b5 + bStride;
        int b7 = b6 + bStride;
        FloatVector sum0 = FloatVector.zero(SPECIES);
        FloatVector sum1 = sum0, sum2 = sum0, sum3 = sum0, sum4 = sum0, sum5 = sum0, sum6 = sum0, sum7 = sum0;
        int i = 0;
        for (; i + LANES <= count; i += LANES) {
            FloatVector v = FloatVector.fromArray(SPECIES, a, aOffset + i);
            sum0 = v.fma(FloatVector.fromArray(SPECIES, b, bOffset + i), sum0);
            sum1 = v.fma(FloatVector.fromArray(SPECIES, b, b1 + i), sum1);
            sum2 = v.fma(FloatVector.fromArray(SPECIES, b, b2 + i), sum2);
            sum3 = v.fma(FloatVector.fromArray(SPECIES, b, b3 + i), sum3);
            sum4 = v.fma(FloatVector.fromArray(SPECIES, b, b4 + i), sum4);
            sum5 = v.fma(FloatVector.fromArray(SPECIES, b, b5 + i), sum5);
            sum6 = v.fma(FloatVector.fromArray(SPECIES, b, b6 + i), sum6);
            sum7 = v.fma(FloatVector.fromArray(SPECIES, b, b7 + i), sum7);
        }
        FloatVector pairs01 = pairUp(sum0, sum1, SWAP_ONES, ODD_ONES);
        FloatVector pairs23 = pairUp(sum2, sum3, SWAP_ONES, ODD_ONES);
        FloatVector pairs45 = pairUp(sum4, sum5, SWAP_ONES, ODD_ONES);
        FloatVector pairs67 = pairUp(sum6, sum7, SWAP_ONES, ODD_ONES);
        FloatVector quads0123 = pairUp(pairs01, pairs23, SWAP_TWOS, ODD_TWOS);
        FloatVector quads4567 = pairUp(pairs45, pairs67, SWAP_TWOS, ODD_TWOS);
        pairUp(quads0123, quads4567, SWAP_FOURS, ODD_FOURS).intoArray(out, outOffset);
        for (; i < count; i++) {
            float value = a[aOffset + i];
            out[outOffset] = Math.fma(value, b[bOffset + i], out[outOffset]);
            out[outOffset + 1] = Math.fma(value, b[b1 + i], out[outOffset + 1]);
            out[outOffset + 2] = Math.fma(value, b[b2 + i], out[outOffset + 2]);
            out[outOffset + 3] = Math.fma(value, b[b3 + i], out[outOffset + 3]);
            out[outOffset + 4] = Math.fma(value, b[b4 + i], out[outOffset + 4]);
            out[outOffset + 5] = Math.fma(value, b[b5 + i], out[outOffset + 5]);
            out[outOffset + 6] = Math.fma(value, b[b6 + i], out[outOffset + 6]);
            out[outOffset + 7] = Math.fma(value, b[b7 + i], out[outOffset + 7]);
        }
    }

    /**
     * One level of the lane-sum transpose at width w: lanes whose w-bit is clear hold x's lane plus
     * its partner lane (index xor w), lanes whose w-bit is set hold the same for y. Fed vectors that
     * each carry partial sums of 2^k dot products in blocks of w lanes, it halves the partial sums
     * per dot product and doubles how many dot products one vector carries.
     */
    private static FloatVector pairUp(FloatVector x, FloatVector y, VectorShuffle<Float> swap, VectorMask<Float> odd) {
        return x.blend(y, odd).add(y.blend(x, odd).rearrange(swap));
    }

    /**
     * The sums of the lanes of s0, s1, s2, s3 in lanes 0 .. 3 (the other lanes hold partial sums, if
     * any): pairing (s0, s1) and (s2, s3) at width 1, then the two pairs at width 2, leaves lane l
     * holding part of the sum of vector l % 4; adding the lanes 4 and 8 apart completes them. About
     * one horizontal reduction instead of four.
     */
    static FloatVector sumLanes(FloatVector s0, FloatVector s1, FloatVector s2, FloatVector s3) {
        FloatVector x = pairUp(pairUp(s0, s1, SWAP_ONES, ODD_ONES), pairUp(s2, s3, SWAP_ONES, ODD_ONES), SWAP_TWOS,
                ODD_TWOS);
        if (LANES > 4) {
            x = x.add(x.rearrange(SWAP_FOURS));
        }
        if (LANES > 8) {
            x = x.add(x.rearrange(SWAP_EIGHTS));
        }
        return x;
    }

    /** Lane l takes lane l xor width (the identity where width is not below the lane count). */
    private static VectorShuffle<Float> swapShuffle(int width) {
        return VectorShuffle.fromOp(SPECIES, lane -> (lane ^ width) & (LANES - 1));
    }

    private static VectorMask<Float> laneBitMask(int width) {
        boolean[] bits = new boolean[LANES];
        for (int lane = 0; lane < LANES; lane++) {
            bits[lane] = (lane & width) != 0;
        }
        return VectorMask.fromArray(SPECIES, bits, 0);
    }

    // exp(x) = 2^k · e^r with k = round(x / ln 2) and |r| ≤ ln 2 / 2; e^r from a degree-7 polynomial
    // (relative error under 1e-7 over the f32 range). Adding 1.5·2^23 + 127 rounds x / ln 2 to an
    // integer and leaves k + 127 in the low mantissa bits; shifting those into the exponent field
    // gives 2^k (the high bits shift out).
    private static final float ROUNDING_SHIFT = 12582912f + 127f;
    private static final float LOWEST_EXP_ARGUMENT = -87.5f;
    private static final float HIGHEST_EXP_ARGUMENT = 88.0f;
    private static final float LOG2_E = 1.44269504088896341f;
    private static final float LN2_HIGH = 0.693359375f;
    private static final float LN2_LOW = -2.12194440e-4f;

    /** e^x per lane; exactly 0 below -87.5 (so exp(-∞) = 0) and capped at e^88 above. */
    static FloatVector exp(FloatVector x) {
        FloatVector clamped = x.max(LOWEST_EXP_ARGUMENT).min(HIGHEST_EXP_ARGUMENT);
        FloatVector shifted = clamped.fma(constant(LOG2_E), constant(ROUNDING_SHIFT));
        FloatVector k = shifted.sub(constant(ROUNDING_SHIFT));
        FloatVector r = k.fma(constant(-LN2_HIGH), clamped);
        r = k.fma(constant(-LN2_LOW), r);
        FloatVector p = r.fma(constant(1.9875691500e-4f), constant(1.3981999507e-3f));
        p = p.fma(r, constant(8.3334519073e-3f));
        p = p.fma(r, constant(4.1665795894e-2f));
        p = p.fma(r, constant(1.6666665459e-1f));
        p = p.fma(r, constant(5.0000001201e-1f));
        p = p.mul(r.mul(r)).add(r).add(constant(1f));
        FloatVector twoToK = shifted.viewAsIntegralLanes().lanewise(VectorOperators.LSHL, 23).viewAsFloatingLanes();
        return p.mul(twoToK).blend(0f, x.compare(VectorOperators.LT, LOWEST_EXP_ARGUMENT));
    }

    private static FloatVector constant(float value) {
        return FloatVector.broadcast(SPECIES, value);
    }

    /**
     * Online softmax for query row r over a tile: its {@code count} scores at scores[base ..], of which
     * the first {@code visible} are unmasked, become exp(score - m_new) (zero where masked), and the
     * row's running max maxima[r], sum sums[r] and accumulator accumulators[r·headDim ..] are brought to
     * the new max. Flash attention's inner step, shared by the contiguous and the paged kernels.
     */
    static void onlineSoftmaxRow(float[] scores, int base, int visible, int count, float[] maxima, float[] sums,
            int r, float[] accumulators, int headDim) {
        if (visible <= 0) {
            Arrays.fill(scores, base, base + count, 0f);
            return;
        }
        int j = 0;
        FloatVector maxVector = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
        for (; j + LANES <= visible; j += LANES) {
            maxVector = maxVector.max(FloatVector.fromArray(SPECIES, scores, base + j));
        }
        float tileMax = maxVector.reduceLanes(VectorOperators.MAX);
        for (; j < visible; j++) {
            tileMax = Math.max(tileMax, scores[base + j]);
        }
        float oldMax = maxima[r];
        float newMax = Math.max(oldMax, tileMax);
        FloatVector shift = FloatVector.broadcast(SPECIES, newMax);
        FloatVector sumVector = FloatVector.zero(SPECIES);
        j = 0;
        for (; j + LANES <= visible; j += LANES) {
            FloatVector weight = exp(FloatVector.fromArray(SPECIES, scores, base + j).sub(shift));
            weight.intoArray(scores, base + j);
            sumVector = sumVector.add(weight);
        }
        float tileSum = Lanes.sum(sumVector);
        for (; j < visible; j++) {
            float weight = (float) Math.exp(scores[base + j] - newMax);
            scores[base + j] = weight;
            tileSum += weight;
        }
        Arrays.fill(scores, base + visible, base + count, 0f);
        if (newMax > oldMax) {
            float correction = (float) Math.exp(oldMax - newMax);
            sums[r] *= correction;
            scale(accumulators, r * headDim, headDim, correction);
        }
        sums[r] += tileSum;
        maxima[r] = newMax;
    }
}
