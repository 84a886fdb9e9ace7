package dev.coil.engine.model;

import dev.coil.engine.ops.PagedKeyValues;

/**
 * Where the attention layers of a model keep their keys and values: one {@link PagedKeyValues} per
 * attention block, addressed through each sequence's block table. The serving engine's store is a
 * fixed pool whose blocks its scheduler hands out; a standalone sequence has a private store that
 * grows ({@link GrowingKeyValueStore}).
 */
public interface KeyValueStore {

    int blockSize();

    /** The storage of model block {@code block} (an attention block). */
    PagedKeyValues layer(int block);

    /**
     * Makes sure {@code sequence}'s block table covers positions [0, positions). The engine's store
     * has done so before the step (and throws if not); a growing store allocates.
     */
    void reserve(SequenceState sequence, int positions);
}
