package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.load.DType;

/** Launch constants shared by the launchers; they mirror common.cuh. */
final class RowKernels {

    /**
     * {@code -Dcoil.cuda.rowKernelsProgrammatic=false} launches the norms, the MLP's activations and
     * the residual update as plain kernels, for comparisons (they wait for the kernel before them
     * either way).
     */
    public static final String PROGRAMMATIC_PROPERTY = "coil.cuda.rowKernelsProgrammatic";

    /** COIL_ROW_THREADS: the block size of the row-wise kernels (norms, rope, embedding). */
    static final int ROW_THREADS = 256;

    /** The block size of the grid-stride elementwise kernels. */
    static final int ELEMENT_THREADS = 256;

    private RowKernels() {}

    /**
     * {@code kernel}, launched programmatically ({@link Kernel#waitsForPreviousKernel}) unless
     * {@link #PROGRAMMATIC_PROPERTY} is false: a kernel starting with COIL_AFTER_PREVIOUS_KERNEL.
     */
    static Kernel programmatic(Kernel kernel) {
        return "false".equalsIgnoreCase(System.getProperty(PROGRAMMATIC_PROPERTY)) ? kernel
                : kernel.waitsForPreviousKernel();
    }

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
