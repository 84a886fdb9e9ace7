package dev.coil.engine.gpu;

import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoD;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemsetD32;
import static jcuda.driver.JCudaDriver.cuMemsetD32Async;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.IntSupplier;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;

/**
 * A range of device memory: an allocation (which {@link #close} frees) or a view into one
 * ({@link #slice}, which owns nothing). Sizes are in bytes; the float helpers count 4-byte elements.
 *
 * <p>Two kinds of transfer. The blocking ones (copyFrom, copyTo, fill) are for setup and tests:
 * they wait for all work on the device before and after, so they are ordered with every stream
 * (the driver would run them on the legacy stream, which Coil's non-blocking streams do not wait
 * for). The async ones take a stream and run in its order; host memory there must be pinned.
 */
public final class DeviceBuffer implements AutoCloseable {

    private static final long COPY_CHUNK = 64L << 20;

    private final CUdeviceptr pointer;
    private final long address;
    private final long bytes;
    private final boolean owner;
    private boolean freed;

    private DeviceBuffer(CUdeviceptr pointer, long address, long bytes, boolean owner) {
        this.pointer = pointer;
        this.address = address;
        this.bytes = bytes;
        this.owner = owner;
    }

    /** Allocates {@code bytes} (at least 1) of device memory in the current context, 256-byte aligned. */
    static DeviceBuffer allocate(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("cannot allocate " + bytes + " bytes of device memory");
        }
        CUdeviceptr pointer = new CUdeviceptr();
        Cuda.check(cuMemAlloc(pointer, Math.max(bytes, 1)), "cuMemAlloc of " + bytes + " bytes");
        return new DeviceBuffer(pointer, NativeHandles.value(pointer), bytes, true);
    }

    /**
     * A view of page-locked host memory at {@code address} that kernels take as a device buffer
     * (under unified addressing the device reaches it at the host's address; see {@link
     * PinnedBuffer#address}). It owns nothing.
     */
    static DeviceBuffer hostMapped(long address, long bytes) {
        return new DeviceBuffer(new CUdeviceptr().withByteOffset(address), address, bytes, false);
    }

    /** The device address of the first byte, as kernels and cuBLAS take it. */
    public long address() {
        return address;
    }

    public long bytes() {
        return bytes;
    }

    /** How many 4-byte elements (f32, int32) fit. */
    public long floats() {
        return bytes / 4;
    }

    public CUdeviceptr pointer() {
        return pointer;
    }

    /** A view of {@code length} bytes from {@code offset}; it shares this buffer's memory and frees nothing. */
    public DeviceBuffer slice(long offset, long length) {
        if (offset < 0 || length < 0 || offset + length > bytes) {
            throw new IndexOutOfBoundsException(
                    "slice [" + offset + ", " + (offset + length) + ") of a device buffer of " + bytes + " bytes");
        }
        return new DeviceBuffer(pointer.withByteOffset(offset), address + offset, length, false);
    }

    /** A view of {@code count} 4-byte elements from element {@code first}. */
    public DeviceBuffer floatSlice(long first, long count) {
        return slice(first * 4, count * 4);
    }

    /** Fails with a sentence naming the buffer unless it holds at least {@code count} 4-byte elements. */
    public DeviceBuffer requireFloats(long count, String name) {
        if (floats() < count) {
            throw new IllegalArgumentException(
                    name + " holds " + floats() + " 4-byte elements on the device; the call needs " + count);
        }
        return this;
    }

    /** Fails with a sentence naming the buffer unless it holds at least {@code count} bytes. */
    public DeviceBuffer requireBytes(long count, String name) {
        if (bytes < count) {
            throw new IllegalArgumentException(name + " holds " + bytes + " bytes on the device; the call needs " + count);
        }
        return this;
    }

    public void copyFrom(float[] source) {
        copyFromHost(Pointer.to(source), 4L * source.length);
    }

    public void copyFrom(int[] source) {
        copyFromHost(Pointer.to(source), 4L * source.length);
    }

    public void copyFrom(short[] source) {
        copyFromHost(Pointer.to(source), 2L * source.length);
    }

    /** Copies a host segment (heap, mapped file or native) to the start of this buffer, in chunks. */
    public void copyFrom(MemorySegment source) {
        long length = source.byteSize();
        requireBytes(length, "the destination");
        byte[] staging = source.isNative() ? null : new byte[(int) Math.min(COPY_CHUNK, length)];
        for (long done = 0; done < length; done += COPY_CHUNK) {
            long chunk = Math.min(COPY_CHUNK, length - done);
            MemorySegment piece = source.asSlice(done, chunk);
            Pointer host;
            if (staging == null) {
                host = Pointer.to(piece.asByteBuffer());
            } else {
                MemorySegment.copy(piece, ValueLayout.JAVA_BYTE, 0, staging, 0, (int) chunk);
                host = Pointer.to(staging);
            }
            CUdeviceptr target = pointer.withByteOffset(done);
            blocking(() -> cuMemcpyHtoD(target, host, chunk), "cuMemcpyHtoD of " + chunk + " bytes");
        }
    }

    public void copyFrom(byte[] source) {
        copyFromHost(Pointer.to(source), source.length);
    }

    public void copyTo(byte[] destination) {
        copyToHost(Pointer.to(destination), destination.length);
    }

    public void copyTo(float[] destination) {
        copyToHost(Pointer.to(destination), 4L * destination.length);
    }

    public void copyTo(int[] destination) {
        copyToHost(Pointer.to(destination), 4L * destination.length);
    }

    public void copyTo(short[] destination) {
        copyToHost(Pointer.to(destination), 2L * destination.length);
    }

    /** Copies {@code length} bytes from another device buffer to the start of this one, blocking. */
    public void copyFrom(DeviceBuffer source, long length) {
        requireBytes(length, "the destination");
        source.requireBytes(length, "the source");
        blocking(() -> cuMemcpyDtoD(pointer, source.pointer, length), "cuMemcpyDtoD of " + length + " bytes");
    }

    /** Queues a copy of {@code length} bytes from another device buffer to the start of this one. */
    public void copyFromAsync(DeviceBuffer source, long length, CudaStream stream) {
        requireBytes(length, "the destination");
        source.requireBytes(length, "the source");
        Cuda.check(cuMemcpyDtoDAsync(pointer, source.pointer, length, stream.handle()),
                "cuMemcpyDtoDAsync of " + length + " bytes");
    }

    /** Queues a copy of {@code length} bytes from a pinned buffer at {@code sourceOffset} to {@code offset} here. */
    public void copyFromAsync(PinnedBuffer source, long sourceOffset, long offset, long length, CudaStream stream) {
        slice(offset, length);
        source.checkRange(sourceOffset, length);
        Cuda.check(cuMemcpyHtoDAsync(pointer.withByteOffset(offset), source.pointer().withByteOffset(sourceOffset),
                length, stream.handle()), "cuMemcpyHtoDAsync of " + length + " bytes");
    }

    /** Queues a copy of {@code length} bytes from {@code offset} here into a pinned buffer at {@code destinationOffset}. */
    public void copyToAsync(PinnedBuffer destination, long destinationOffset, long offset, long length,
            CudaStream stream) {
        slice(offset, length);
        destination.checkRange(destinationOffset, length);
        Cuda.check(cuMemcpyDtoHAsync(destination.pointer().withByteOffset(destinationOffset),
                pointer.withByteOffset(offset), length, stream.handle()), "cuMemcpyDtoHAsync of " + length + " bytes");
    }

    /** Sets every 4-byte element to {@code bits} (Float.floatToRawIntBits(NaN) poisons an output), blocking. */
    public void fill(int bits) {
        blocking(() -> cuMemsetD32(pointer, bits, floats()), "cuMemsetD32 of " + floats() + " elements");
    }

    public void fillAsync(int bits, CudaStream stream) {
        Cuda.check(cuMemsetD32Async(pointer, bits, floats(), stream.handle()), "cuMemsetD32Async");
    }

    private void copyFromHost(Pointer host, long length) {
        requireBytes(length, "the destination");
        if (length == 0) {
            return;
        }
        blocking(() -> cuMemcpyHtoD(pointer, host, length), "cuMemcpyHtoD of " + length + " bytes");
    }

    private void copyToHost(Pointer host, long length) {
        requireBytes(length, "the source");
        if (length == 0) {
            return;
        }
        blocking(() -> cuMemcpyDtoH(host, pointer, length), "cuMemcpyDtoH of " + length + " bytes");
    }

    /** Runs a transfer of the legacy stream between two device-wide waits, so it is ordered with every stream. */
    private static void blocking(IntSupplier transfer, String call) {
        Cuda.check(cuCtxSynchronize(), "cuCtxSynchronize before " + call);
        Cuda.check(transfer.getAsInt(), call);
        Cuda.check(cuCtxSynchronize(), "cuCtxSynchronize after " + call);
    }

    /** Frees an allocation; a slice frees nothing. */
    @Override
    public void close() {
        if (owner && !freed) {
            freed = true;
            Cuda.check(cuMemFree(pointer), "cuMemFree");
        }
    }
}
