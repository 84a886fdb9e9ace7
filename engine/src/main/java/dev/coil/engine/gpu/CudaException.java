package dev.coil.engine.gpu;

/** A CUDA driver, cuBLAS or kernel-loading failure, with the call and the error's name in its message. */
public class CudaException extends RuntimeException {

    private final int result;

    public CudaException(String message) {
        this(message, 0, null);
    }

    public CudaException(String message, Throwable cause) {
        this(message, 0, cause);
    }

    public CudaException(String message, int result, Throwable cause) {
        super(message, cause);
        this.result = result;
    }

    /** The CUresult or cublasStatus_t that caused it, 0 when none. */
    public int result() {
        return result;
    }
}
