package dev.coil.engine.ops;

/** Dimensions of one Mamba-2 layer's scan: heads × headDim channels, groups × stateSize for B and C. */
public record SsmShape(int heads, int headDim, int groups, int stateSize) {
    public SsmShape {
        if (heads <= 0 || headDim <= 0 || groups <= 0 || stateSize <= 0 || heads % groups != 0) {
            throw new IllegalArgumentException("bad SSM shape: heads " + heads + ", headDim " + headDim + ", groups "
                    + groups + ", stateSize " + stateSize + " (heads must be a multiple of groups)");
        }
    }

    public int innerSize() {
        return heads * headDim;
    }

    /** Floats in one sequence's SSM state: heads · headDim · stateSize. */
    public int stateFloats() {
        return heads * headDim * stateSize;
    }

    public int groupOfHead(int head) {
        return head / (heads / groups);
    }
}
