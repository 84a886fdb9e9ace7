package dev.coil.engine.cpu;

import static dev.coil.engine.cpu.PagedAttention.SCORE_STRIDE;
import static dev.coil.engine.cpu.PagedAttention.TILE;

/** One thread's scratch: a tile's row offsets and scores, and every query row's running (m, l, accumulator). */
final class PagedWorkspace {
    final long[] offsets = new long[TILE];
    /** Sum of the touching loads, kept so that they are not optimised away. */
    int sink;
    float[] scores = new float[0];
    float[] accumulators = new float[0];
    float[] maxima = new float[0];
    float[] sums = new float[0];

    void ensure(int rows, int headDim) {
        if (maxima.length < rows || accumulators.length < rows * headDim) {
            scores = new float[rows * SCORE_STRIDE];
            accumulators = new float[rows * headDim];
            maxima = new float[rows];
            sums = new float[rows];
        }
    }
}
