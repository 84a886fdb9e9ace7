package dev.coil.engine.ops;

/** Dimensions of one attention layer: query heads share kv heads in groups (GQA). */
public record AttentionShape(int queryHeads, int kvHeads, int headDim) {
    public AttentionShape {
        if (queryHeads <= 0 || kvHeads <= 0 || headDim <= 0 || queryHeads % kvHeads != 0) {
            throw new IllegalArgumentException("bad attention shape: " + queryHeads + " query heads, " + kvHeads
                    + " kv heads, head dim " + headDim + " (query heads must be a multiple of kv heads)");
        }
    }

    public int kvHeadOf(int queryHead) {
        return queryHead / (queryHeads / kvHeads);
    }
}
