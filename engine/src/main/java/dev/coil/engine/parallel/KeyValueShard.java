package dev.coil.engine.parallel;

import java.util.Arrays;

/**
 * The keys and values of some positions of one sequence, for one attention layer, on one device:
 * keys, values [length, kvHeads, headDim] in f32, and the global position of each row, ascending.
 * A device keeps its own shard for the whole sequence; during a ring step it also holds a
 * neighbour's, received by {@link #copyInto}.
 */
final class KeyValueShard {

    private final int width; // kvHeads · headDim
    private float[] keys;
    private float[] values;
    private int[] positions;
    private int length;

    KeyValueShard(int width, int capacity) {
        this.width = width;
        this.keys = new float[Math.max(1, capacity) * width];
        this.values = new float[Math.max(1, capacity) * width];
        this.positions = new int[Math.max(1, capacity)];
    }

    int length() {
        return length;
    }

    float[] keys() {
        return keys;
    }

    float[] values() {
        return values;
    }

    int[] positions() {
        return positions;
    }

    /** Appends {@code rows} rows of k, v [rows, width] at the given positions (each after the last held). */
    void append(float[] k, float[] v, int[] rowPositions, int rows) {
        if (rows > 0 && length > 0 && rowPositions[0] <= positions[length - 1]) {
            throw new IllegalArgumentException("shard positions must ascend: " + rowPositions[0] + " after "
                    + positions[length - 1]);
        }
        reserve(length + rows);
        System.arraycopy(k, 0, keys, length * width, rows * width);
        System.arraycopy(v, 0, values, length * width, rows * width);
        System.arraycopy(rowPositions, 0, positions, length, rows);
        length += rows;
    }

    /** Makes {@code target} a copy of this shard: the transfer of a ring step. */
    void copyInto(KeyValueShard target) {
        target.reserve(length);
        System.arraycopy(keys, 0, target.keys, 0, length * width);
        System.arraycopy(values, 0, target.values, 0, length * width);
        System.arraycopy(positions, 0, target.positions, 0, length);
        target.length = length;
    }

    private void reserve(int rows) {
        if (rows > positions.length) {
            int capacity = Math.max(rows, 2 * positions.length);
            keys = Arrays.copyOf(keys, capacity * width);
            values = Arrays.copyOf(values, capacity * width);
            positions = Arrays.copyOf(positions, capacity);
        }
    }
}
