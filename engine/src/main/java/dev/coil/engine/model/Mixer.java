package dev.coil.engine.model;

import dev.coil.engine.ops.Ops;

/** The token-mixing or feed-forward part of a residual block. */
public sealed interface Mixer permits Mamba2Mixer, AttentionMixer, FeedForward {

    /**
     * x: [batch.rows(), hidden], already normalised, one row per new token of each segment.
     * Returns [batch.rows(), hidden]. {@code block} is this mixer's index in the model, which
     * locates its state in each segment's sequence.
     */
    float[] forward(Ops ops, float[] x, Batch batch, int block);

    /** A fresh state for a new sequence, or null when the mixer keeps none besides the K/V cache. */
    LayerState newState();
}
