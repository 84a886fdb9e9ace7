package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.load.DType;
/** Launch constants shared by the launchers; they mirror common.cuh. */
final class RowKernels {

    /** COIL_ROW_THREADS: the block size of the row-wise kernels (norms, rope, embedding). */
    static final int ROW_THREADS = 256;

    /** The block size of the grid-stride elementwise kernels. */
    static final int ELEMENT_THREADS = 256;

    private RowKernels() {}

    static void requirePositive(int value, String name) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be positive, not " + value);
        }
    }

    static void requireNonNegative(int value, String name) {
        if (value < 0) {
            throw new IllegalArgumentException(name + " must not be negative, not " + value);
        }
    }

    /** A row stride must reach past the row it strides over. */
    static void requireStride(int stride, int width, String name) {
        if (stride < width) {
            throw new IllegalArgumentException(name + " (" + stride + ") must be at least the row width " + width);
        }
    }

    /** out holds {@code count} elements of {@code type}, F32 or BF16. */
    static void requireOutput(DeviceBuffer out, long count, DType type) {
        switch (type) {
            case F32 -> out.requireFloats(count, "out");
            case BF16 -> out.requireBytes(2 * count, "out");
            case F16 -> throw new IllegalArgumentException("outputs are F32 or BF16, not F16");
        }
    }

    /** Floats spanned by rows of {@code width} spaced {@code stride} apart. */
    static long spanned(int rows, int width, int stride) {
        return rows == 0 ? 0 : (long) (rows - 1) * stride + width;
    }
}
