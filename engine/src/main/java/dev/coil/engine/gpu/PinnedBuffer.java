package dev.coil.engine.gpu;

import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemHostAlloc;

import java.lang.foreign.MemorySegment;
import jcuda.Pointer;

/**
 * Page-locked host memory: the only host memory the DMA engines copy asynchronously from and to.
 * Java sees it as a native {@link MemorySegment}; {@link #close} frees it, after which the segment
 * must not be touched.
 */
public final class PinnedBuffer implements AutoCloseable {

    private final Pointer pointer;
    private final MemorySegment segment;
    private boolean freed;

    PinnedBuffer(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("a pinned buffer needs a positive size, not " + bytes + " bytes");
        }
        pointer = new Pointer();
        Cuda.check(cuMemHostAlloc(pointer, bytes, 0), "cuMemHostAlloc of " + bytes + " bytes");
        segment = MemorySegment.ofAddress(NativeHandles.value(pointer)).reinterpret(bytes);
    }

    public MemorySegment segment() {
        return segment;
    }

    public long bytes() {
        return segment.byteSize();
    }

    /**
     * Its address, which kernels may use as well: under unified addressing (every 64-bit platform
     * CUDA supports) page-locked memory from cuMemHostAlloc is reachable from the device at the
     * host's address.
     */
    public long address() {
        return segment.address();
    }

    /**
     * Bytes [offset, offset + length) as a buffer kernels read and write in place, without a copy: each
     * access crosses the bus, so it suits a few values a step (settings in, tokens out). It owns nothing
     * and is valid while this buffer is.
     */
    public DeviceBuffer deviceView(long offset, long length) {
        checkRange(offset, length);
        return DeviceBuffer.hostMapped(address() + offset, length);
    }

    Pointer pointer() {
        return pointer;
    }

    public void checkRange(long offset, long length) {
        if (offset < 0 || length < 0 || offset + length > bytes()) {
            throw new IndexOutOfBoundsException(
                    "range [" + offset + ", " + (offset + length) + ") of a pinned buffer of " + bytes() + " bytes");
        }
    }

    @Override
    public void close() {
        if (!freed) {
            freed = true;
            Cuda.check(cuMemFreeHost(pointer), "cuMemFreeHost");
        }
    }
}
