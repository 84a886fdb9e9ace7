package dev.coil.engine.load;

import java.util.Arrays;

/**
 * Where one tensor lives: its dtype, its shape, and its bytes [dataOffset, dataOffset + byteSize)
 * counted from the start of {@code file} (the header already skipped).
 */
public record TensorInfo(String name, DType dtype, long[] shape, long dataOffset, long byteSize, String file) {

    public TensorInfo {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long dim(int axis) {
        return shape[axis];
    }

    /** Product of the dims (1 for a scalar). */
    public long elementCount() {
        long count = 1;
        for (long dim : shape) {
            count *= dim;
        }
        return count;
    }

    /** True when the shape is exactly {@code expected}. */
    public boolean hasShape(long... expected) {
        return Arrays.equals(shape, expected);
    }

    /** The shape as written in messages: "[2048, 4096]". */
    public String shapeText() {
        return shapeText(shape);
    }

    static String shapeText(long[] shape) {
        StringBuilder text = new StringBuilder("[");
        for (int i = 0; i < shape.length; i++) {
            text.append(i == 0 ? "" : ", ").append(shape[i]);
        }
        return text.append(']').toString();
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof TensorInfo that
                && name.equals(that.name)
                && dtype == that.dtype
                && Arrays.equals(shape, that.shape)
                && dataOffset == that.dataOffset
                && byteSize == that.byteSize
                && file.equals(that.file);
    }

    @Override
    public int hashCode() {
        return 31 * name.hashCode() + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return name + " " + dtype + shapeText() + " in " + file + " @" + dataOffset;
    }
}
