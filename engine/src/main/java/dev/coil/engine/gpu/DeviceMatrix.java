package dev.coil.engine.gpu;

import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;

/**
 * A weight matrix in device memory, in its storage dtype and layout: row-major (rows, cols), as
 * {@link Matrix} holds it (a linear layer's (out_features, in_features)).
 */
public record DeviceMatrix(DeviceBuffer data, DType dtype, int rows, int cols) implements AutoCloseable {

    public DeviceMatrix {
        data.requireBytes((long) rows * cols * dtype.bytes(), "matrix [" + rows + ", " + cols + "] " + dtype);
    }

    /** Copies {@code matrix} to a new allocation on {@code device}. */
    public static DeviceMatrix upload(CudaDevice device, Matrix matrix) {
        DeviceBuffer buffer = device.allocate(matrix.byteSize());
        try {
            buffer.copyFrom(matrix.data());
        } catch (RuntimeException e) {
            buffer.close();
            throw e;
        }
        return new DeviceMatrix(buffer, matrix.dtype(), matrix.rows(), matrix.cols());
    }

    /**
     * Copies {@code parts} (of one dtype and width) one after another into a new allocation: a matrix of
     * their rows stacked, part i's from the sum of the rows before it.
     */
    public static DeviceMatrix uploadStacked(CudaDevice device, Matrix[] parts) {
        if (parts.length == 0) {
            throw new IllegalArgumentException("no matrices to stack");
        }
        long rows = 0;
        for (Matrix part : parts) {
            if (part.dtype() != parts[0].dtype() || part.cols() != parts[0].cols()) {
                throw new IllegalArgumentException("matrices of " + part.dtype() + " [" + part.rows() + ", "
                        + part.cols() + "] and " + parts[0].dtype() + " [" + parts[0].rows() + ", " + parts[0].cols()
                        + "] do not stack");
            }
            rows += part.rows();
        }
        if (rows > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(rows + " stacked rows do not fit a matrix");
        }
        long bytes = rows * parts[0].cols() * parts[0].dtype().bytes();
        DeviceBuffer buffer = device.allocate(bytes);
        try {
            long offset = 0;
            for (Matrix part : parts) {
                buffer.slice(offset, part.byteSize()).copyFrom(part.data());
                offset += part.byteSize();
            }
        } catch (RuntimeException e) {
            buffer.close();
            throw e;
        }
        return new DeviceMatrix(buffer, parts[0].dtype(), (int) rows, parts[0].cols());
    }

    @Override
    public void close() {
        data.close();
    }
}
