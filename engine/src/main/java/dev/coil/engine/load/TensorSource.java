package dev.coil.engine.load;

import java.util.Arrays;

/**
 * The values of one tensor to write, produced chunk by chunk so that a tensor larger than any
 * array (random benchmark weights) never exists in memory whole.
 */
public interface TensorSource {

    /** The dtype to store; values are produced as f32 and rounded to it. */
    DType dtype();

    long[] shape();

    /** Fills {@code chunk} with elements [offset, offset + chunk.length) in row-major order. */
    void fill(long offset, float[] chunk);

    default long elementCount() {
        long count = 1;
        for (long dim : shape()) {
            count = Math.multiplyExact(count, dim);
        }
        return count;
    }

    /** A tensor whose values are all in memory. */
    static TensorSource of(DType dtype, float[] values, long... shape) {
        long[] dims = shape.clone();
        long count = Arrays.stream(dims).reduce(1, Math::multiplyExact);
        if (count != values.length) {
            throw new IllegalArgumentException("shape " + TensorInfo.shapeText(dims) + " holds " + count
                    + " elements, but " + values.length + " values were given");
        }
        return generated(dtype, dims, (offset, chunk) -> System.arraycopy(values, Math.toIntExact(offset), chunk, 0,
                chunk.length));
    }

    /** Fills a chunk of a generated tensor: elements [offset, offset + chunk.length). */
    @FunctionalInterface
    interface Filler {
        void fill(long offset, float[] chunk);
    }

    /** A tensor whose values {@code filler} produces chunk by chunk (random benchmark weights). */
    static TensorSource generated(DType dtype, long[] shape, Filler filler) {
        long[] dims = shape.clone();
        return new TensorSource() {
            @Override
            public DType dtype() {
                return dtype;
            }

            @Override
            public long[] shape() {
                return dims.clone();
            }

            @Override
            public void fill(long offset, float[] chunk) {
                filler.fill(offset, chunk);
            }
        };
    }
}
