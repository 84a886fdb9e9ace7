package dev.coil.engine.gpu;

import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/**
 * An ordered queue of device work. Kernels, copies and cuBLAS calls given the same stream run in
 * the order they were issued; a non-blocking stream does not wait for the legacy default stream.
 */
public final class CudaStream implements AutoCloseable {

    private final CUstream handle;
    private final long address;
    private boolean closed;

    CudaStream() {
        handle = new CUstream();
        Cuda.check(cuStreamCreate(handle, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
        address = NativeHandles.value(handle);
    }

    public CUstream handle() {
        return handle;
    }

    /** The raw cudaStream_t, for cuBLAS. */
    public long address() {
        return address;
    }

    /**
     * Work issued to this stream from now on waits until {@code event}'s point is reached; the
     * event may belong to another device (how one GPU waits for a peer's data without the host).
     */
    public void waitFor(CudaEvent event) {
        Cuda.check(jcuda.driver.JCudaDriver.cuStreamWaitEvent(handle, event.handle(), 0), "cuStreamWaitEvent");
    }

    /** Waits until all work issued to this stream has finished; a kernel fault surfaces here. */
    public void synchronize() {
        Cuda.check(cuStreamSynchronize(handle), "cuStreamSynchronize");
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Cuda.check(cuStreamDestroy(handle), "cuStreamDestroy");
        }
    }
}
