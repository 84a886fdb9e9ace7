package dev.coil.engine.gpu;

import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Weight matrices in a storage dtype, built from f32 values, off-heap as a mapped checkpoint would be. */
public final class TestMatrices {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private TestMatrices() {}

    /** values (rows, cols) stored as {@code dtype} (rounded to nearest even for 16-bit types). */
    public static Matrix of(float[] values, int rows, int cols, DType dtype) {
        MemorySegment data = Arena.ofAuto().allocate((long) rows * cols * dtype.bytes(), 8);
        for (int i = 0; i < rows * cols; i++) {
            switch (dtype) {
                case F32 -> data.set(F32, 4L * i, values[i]);
                case BF16 -> data.set(U16, 2L * i, Matrix.floatToBf16(values[i]));
                case F16 -> data.set(U16, 2L * i, Float.floatToFloat16(values[i]));
            }
        }
        return new Matrix(data, dtype, rows, cols);
    }

    /** value rounded to {@code dtype} and widened back: what a 16-bit operand holds. */
    /** The values as the device holds them in {@code dtype}: each rounded to it and widened back. */
    public static float[] widened(float[] values, DType dtype) {
        float[] widened = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            widened[i] = round(values[i], dtype);
        }
        return widened;
    }

    /** Σ_c a[aOffset + c] · b[bOffset + c] in double. */
    public static double dot(float[] a, int aOffset, float[] b, int bOffset, int length) {
        double sum = 0;
        for (int c = 0; c < length; c++) {
            sum += (double) a[aOffset + c] * b[bOffset + c];
        }
        return sum;
    }

    public static float round(float value, DType dtype) {
        return switch (dtype) {
            case F32 -> value;
            case BF16 -> Matrix.bf16ToFloat(Matrix.floatToBf16(value));
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(value));
        };
    }
}
