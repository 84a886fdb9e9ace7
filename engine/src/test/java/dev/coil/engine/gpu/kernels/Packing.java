package dev.coil.engine.gpu.kernels;

import java.util.Arrays;

/** The host arrays of a packing of sequences one after another in rows, for the packed kernels' tests. */
final class Packing {

    private Packing() {
    }

    /** starts[s] = the first row of sequence s, starts[n] = every row: (n + 1) values from 0. */
    static int[] starts(int[] lengths) {
        int[] starts = new int[lengths.length + 1];
        for (int s = 0; s < lengths.length; s++) {
            starts[s + 1] = starts[s] + lengths[s];
        }
        return starts;
    }

    /** Each row's sequence. */
    static int[] rowChunk(int[] lengths) {
        int[] starts = starts(lengths);
        int[] rowChunk = new int[starts[lengths.length]];
        for (int s = 0; s < lengths.length; s++) {
            Arrays.fill(rowChunk, starts[s], starts[s + 1], s);
        }
        return rowChunk;
    }
}
