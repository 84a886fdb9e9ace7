package dev.coil.engine.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Random;

/** Random inputs, weight matrices in every storage dtype, and f32-scaled comparisons for the op tests. */
final class LinearTestSupport {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private LinearTestSupport() {}

    static float[] uniform(Random random, int n, float low, float high) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = low + (high - low) * random.nextFloat();
        }
        return values;
    }

    /**
     * values [rows, cols] stored as dtype, starting {@code byteOffset} bytes into a fresh segment
     * (an odd offset leaves every element unaligned, as in a safetensors file); heap or off-heap.
     */
    static Matrix matrix(float[] values, int rows, int cols, DType dtype, int byteOffset, boolean offHeap) {
        long bytes = (long) rows * cols * dtype.bytes();
        MemorySegment whole = offHeap
                ? Arena.ofAuto().allocate(bytes + byteOffset, 8)
                : MemorySegment.ofArray(new byte[(int) (bytes + byteOffset)]);
        MemorySegment data = whole.asSlice(byteOffset, bytes);
        for (int i = 0; i < rows * cols; i++) {
            switch (dtype) {
                case F32 -> data.set(F32, 4L * i, values[i]);
                case BF16 -> data.set(U16, 2L * i, Matrix.floatToBf16(values[i]));
                case F16 -> data.set(U16, 2L * i, Float.floatToFloat16(values[i]));
            }
        }
        return new Matrix(data, dtype, rows, cols);
    }

    /** |actual − expected| ≤ relative · scale[i] elementwise, with a message naming the first bad index. */
    static void assertClose(float[] actual, float[] expected, double[] scale, double relative, String what) {
        assertThat(actual).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            double error = Math.abs((double) actual[i] - expected[i]);
            double allowed = relative * scale[i];
            if (!(error <= allowed)) {
                throw new AssertionError(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i]
                        + " (error " + error + " > allowed " + allowed + ")");
            }
        }
    }
}
