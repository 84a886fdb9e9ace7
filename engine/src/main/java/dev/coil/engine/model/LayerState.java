package dev.coil.engine.model;

import java.util.Arrays;

/** What one block carries from token to token for one sequence, besides the K/V cache. */
public sealed interface LayerState {

    /**
     * Mamba-2 recurrent state. conv: [kernel-1, convChannels], the previous pre-conv inputs, oldest
     * first; ssm: [heads, headDim, stateSize] in f32 (the recurrence accumulates rounding error).
     */
    record Mamba(float[] conv, float[] ssm) implements LayerState {

        /** Bytes of one state: conv and ssm in f32. */
        public long bytes() {
            return 4L * (conv.length + ssm.length);
        }

        /** The state at the start of a sequence. */
        public void clear() {
            Arrays.fill(conv, 0f);
            Arrays.fill(ssm, 0f);
        }

        public void copyFrom(Mamba other) {
            System.arraycopy(other.conv, 0, conv, 0, conv.length);
            System.arraycopy(other.ssm, 0, ssm, 0, ssm.length);
        }

        public Mamba copy() {
            return new Mamba(conv.clone(), ssm.clone());
        }
    }
}
