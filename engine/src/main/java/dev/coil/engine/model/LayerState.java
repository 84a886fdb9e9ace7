package dev.coil.engine.model;

import java.util.Arrays;

/** What one block carries from token to token for one sequence. */
public sealed interface LayerState {

    /** A deep copy (prefix snapshots, preemption). */
    LayerState copy();

    /**
     * Mamba-2 recurrent state. conv: [kernel-1, convChannels], the previous pre-conv inputs, oldest
     * first; ssm: [heads, headDim, stateSize] in f32 (the recurrence accumulates rounding error).
     */
    record Mamba(float[] conv, float[] ssm) implements LayerState {
        @Override
        public Mamba copy() {
            return new Mamba(conv.clone(), ssm.clone());
        }
    }

    /** Contiguous K/V cache of one attention layer: keys, values [capacity, kvHeads, headDim] in f32. */
    final class KeyValues implements LayerState {
        private final int rowWidth;
        private float[] keys;
        private float[] values;

        public KeyValues(int kvHeads, int headDim, int initialCapacity) {
            this.rowWidth = kvHeads * headDim;
            this.keys = new float[Math.max(1, initialCapacity) * rowWidth];
            this.values = new float[keys.length];
        }

        private KeyValues(int rowWidth, float[] keys, float[] values) {
            this.rowWidth = rowWidth;
            this.keys = keys;
            this.values = values;
        }

        /** Writes k, v ([tokens, kvHeads, headDim]) at positions start .. start + tokens, growing as needed. */
        public void write(int start, int tokens, float[] k, float[] v) {
            int needed = (start + tokens) * rowWidth;
            if (needed > keys.length) {
                int capacity = Math.max(needed, keys.length * 2);
                keys = Arrays.copyOf(keys, capacity);
                values = Arrays.copyOf(values, capacity);
            }
            System.arraycopy(k, 0, keys, start * rowWidth, tokens * rowWidth);
            System.arraycopy(v, 0, values, start * rowWidth, tokens * rowWidth);
        }

        public float[] keys() {
            return keys;
        }

        public float[] values() {
            return values;
        }

        @Override
        public KeyValues copy() {
            return new KeyValues(rowWidth, keys.clone(), values.clone());
        }
    }
}
