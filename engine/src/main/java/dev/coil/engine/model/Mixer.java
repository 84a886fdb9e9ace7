package dev.coil.engine.model;

import dev.coil.engine.ops.Ops;

/** The token-mixing or feed-forward part of a residual block. */
public sealed interface Mixer permits Mamba2Mixer, AttentionMixer, FeedForward {

    /**
     * x: [tokens, hidden], already normalised; the tokens sit at positions past .. past + tokens.
     * Returns [tokens, hidden]. state is this block's {@link LayerState} (null for feed-forward).
     */
    float[] forward(Ops ops, float[] x, int tokens, int past, Phase phase, LayerState state);

    /** A fresh state for a new sequence, or null when the mixer keeps none. */
    LayerState newState();
}
