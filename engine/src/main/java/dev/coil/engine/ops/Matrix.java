package dev.coil.engine.ops;

import dev.coil.engine.load.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A row-major weight matrix [rows, cols] that stays in its storage dtype (usually a slice of a
 * memory-mapped safetensors file). Linear layers store W as [out_features, in_features], so
 * y = x·Wᵀ reads one contiguous row per output feature.
 */
public record Matrix(MemorySegment data, DType dtype, int rows, int cols) {

    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public Matrix {
        long need = (long) rows * cols * dtype.bytes();
        if (data.byteSize() != need) {
            throw new IllegalArgumentException(
                    "matrix [" + rows + ", " + cols + "] " + dtype + " needs " + need + " bytes, segment has " + data.byteSize());
        }
    }

    /** A matrix over f32 values held on the heap (tests, random benchmark weights). */
    public static Matrix ofFloats(float[] values, int rows, int cols) {
        MemorySegment segment = MemorySegment.ofArray(values);
        return new Matrix(segment, DType.F32, rows, cols);
    }

    /** Rows [start, start + count) as a matrix sharing this one's storage (no copy). */
    public Matrix rowSlice(int start, int count) {
        if (start < 0 || count < 0 || start + count > rows) {
            throw new IndexOutOfBoundsException("rows [" + start + ", " + (start + count) + ") of " + rows);
        }
        long rowBytes = (long) cols * dtype.bytes();
        return new Matrix(data.asSlice(start * rowBytes, count * rowBytes), dtype, count, cols);
    }

    /** One element, widened to f32. Slow: for references and tests. */
    public float get(int row, int col) {
        long index = (long) row * cols + col;
        return switch (dtype) {
            case F32 -> data.get(F32, index * 4);
            case BF16 -> bf16ToFloat(data.get(U16, index * 2));
            case F16 -> Float.float16ToFloat(data.get(U16, index * 2));
        };
    }

    /** Copies row {@code row} into dst[offset .. offset + cols), widened to f32. */
    public void readRow(int row, float[] dst, int offset) {
        for (int c = 0; c < cols; c++) {
            dst[offset + c] = get(row, c);
        }
    }

    /** All elements widened to f32 (small tensors: norms, biases, conv weights). */
    public float[] toFloatArray() {
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            readRow(r, out, r * cols);
        }
        return out;
    }

    public long byteSize() {
        return data.byteSize();
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** Round-to-nearest-even f32 → bf16, as torch does. */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) 0x7fc0;
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
