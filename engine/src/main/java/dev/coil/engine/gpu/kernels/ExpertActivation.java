package dev.coil.engine.gpu.kernels;

/**
 * An expert's input product: {@code SILU_GATED} silu(gate) · up over its 2F stacked rows, gate first
 * (Granite); {@code SQUARED_RELU} relu(up)² over its F up rows (NemotronH).
 */
public enum ExpertActivation {
    SILU_GATED,
    SQUARED_RELU;

    /** An expert's rows of the input matrix: 2F or F. */
    public long inputRows(int width) {
        return this == SILU_GATED ? 2L * width : width;
    }

    int gated() {
        return this == SILU_GATED ? 1 : 0;
    }
}
