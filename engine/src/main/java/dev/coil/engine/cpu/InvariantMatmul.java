package dev.coil.engine.cpu;

import dev.coil.engine.ops.Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * out[t, n] = Σ_k x[t, k] · w[n, k] for {@code --batch-invariant}: every output one dot product in
 * one order, whatever the number of tokens. {@link Matmul}'s decode, few-token and prefill paths
 * each sum in their own (one vector stream or four, two accumulators or one, register tiles with
 * scalar leftovers), so a row's output moved with the rows beside it. Here rows are widened a
 * block at a time, as the prefill path does, and each (token, row) is one fused multiply-add per
 * lane over k in order, {@link Lanes#sum} of the lanes, then the leftover k one at a time.
 */
final class InvariantMatmul {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = FLOATS.length();
    private static final long MIN_WORK_PER_PIECE = 1 << 18;

    private InvariantMatmul() {
    }

    /** x: [tokens, cols]; out: [tokens, rows]; w in its storage dtype. */
    static void multiply(Parallel parallel, float[] x, int tokens, Matrix w, float[] out) {
        int rows = w.rows();
        int cols = w.cols();
        if (tokens <= 0 || rows == 0) {
            return;
        }
        int rowBlock = Math.min(rows, Math.max(1, Matmul.ROW_BLOCK_BYTES / (4 * Math.max(1, cols))));
        int rowBlocks = Math.ceilDiv(rows, rowBlock);
        long workPerBlock = (long) rowBlock * cols * tokens;
        int minBlocks = (int) Math.max(1, MIN_WORK_PER_PIECE / Math.max(1, workPerBlock));
        parallel.forRange(rowBlocks, minBlocks, (start, end) -> {
            float[] widened = new float[rowBlock * cols];
            for (int block = start; block < end; block++) {
                int rowStart = block * rowBlock;
                int count = Math.min(rowBlock, rows - rowStart);
                Matmul.widenRows(w, rowStart, count, widened);
                for (int t = 0; t < tokens; t++) {
                    for (int r = 0; r < count; r++) {
                        out[t * rows + rowStart + r] = dot(x, t * cols, widened, r * cols, cols);
                    }
                }
            }
        });
    }

    /** a[aOffset ..] · b[bOffset ..] over n elements, in the one order described above. */
    private static float dot(float[] a, int aOffset, float[] b, int bOffset, int n) {
        int bound = FLOATS.loopBound(n);
        FloatVector sums = FloatVector.zero(FLOATS);
        for (int k = 0; k < bound; k += LANES) {
            sums = FloatVector.fromArray(FLOATS, a, aOffset + k).fma(FloatVector.fromArray(FLOATS, b, bOffset + k), sums);
        }
        float s = Lanes.sum(sums);
        for (int k = bound; k < n; k++) {
            s += a[aOffset + k] * b[bOffset + k];
        }
        return s;
    }
}
