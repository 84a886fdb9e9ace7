package dev.coil.engine.gpu;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;

import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;

/** A marker in a stream: to time device work between two of them, or to wait for a point. */
public final class CudaEvent implements AutoCloseable {

    private final CUevent handle;
    private boolean closed;

    CudaEvent() {
        handle = new CUevent();
        Cuda.check(cuEventCreate(handle, CUevent_flags.CU_EVENT_DEFAULT), "cuEventCreate");
    }

    public CUevent handle() {
        return handle;
    }

    /** Marks the point after all work issued to {@code stream} so far. */
    public void record(CudaStream stream) {
        Cuda.check(cuEventRecord(handle, stream.handle()), "cuEventRecord");
    }

    public void synchronize() {
        Cuda.check(cuEventSynchronize(handle), "cuEventSynchronize");
    }

    /** Device time from {@code start} to this event, in milliseconds; waits for this event. */
    public float millisSince(CudaEvent start) {
        synchronize();
        float[] millis = new float[1];
        Cuda.check(cuEventElapsedTime(millis, start.handle, handle), "cuEventElapsedTime");
        return millis[0];
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Cuda.check(cuEventDestroy(handle), "cuEventDestroy");
        }
    }
}
