package dev.coil.engine.model;

/**
 * Everything a model remembers about one sequence: one {@link LayerState} per block (null for
 * stateless feed-forward blocks) and the number of tokens already processed.
 */
public final class SequenceState {

    private final LayerState[] layers;
    private int length;

    SequenceState(LayerState[] layers, int length) {
        this.layers = layers;
        this.length = length;
    }

    /** Tokens processed so far: the position of the next token. */
    public int length() {
        return length;
    }

    void advance(int tokens) {
        length += tokens;
    }

    LayerState layer(int block) {
        return layers[block];
    }

    /** A deep copy: the state after the same tokens, independent of this one. */
    public SequenceState copy() {
        LayerState[] copies = new LayerState[layers.length];
        for (int i = 0; i < layers.length; i++) {
            copies[i] = layers[i] == null ? null : layers[i].copy();
        }
        return new SequenceState(copies, length);
    }
}
