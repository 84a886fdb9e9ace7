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

    @Override
    public void close() {
        data.close();
    }
}
