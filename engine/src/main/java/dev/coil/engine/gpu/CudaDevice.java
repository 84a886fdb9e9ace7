package dev.coil.engine.gpu;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuDeviceTotalMem;
import static jcuda.driver.JCudaDriver.cuDriverGetVersion;
import static jcuda.driver.JCudaDriver.cuMemGetInfo;

import java.nio.charset.StandardCharsets;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;

/**
 * One CUDA GPU, through its primary context: the context the CUDA runtime also uses, so cuBLAS
 * (which goes through the runtime) works on the same memory and streams without a context switch.
 * It owns that context reference and the loaded kernel module, and allocates device memory,
 * pinned host memory, streams and events.
 *
 * <p>Driver calls act on the calling thread's current context: {@link #open} makes it current on
 * the opening thread; any other thread that uses the device calls {@link #makeCurrent} first.
 */
public final class CudaDevice implements AutoCloseable {

    private final int ordinal;
    private final CUdevice device;
    private final CUcontext context;
    private final String name;
    private final int major;
    private final int minor;
    private final int multiprocessors;
    private final long totalMemory;
    private KernelModule kernels;
    private boolean closed;

    private CudaDevice(int ordinal, CUdevice device, CUcontext context) {
        this.ordinal = ordinal;
        this.device = device;
        this.context = context;
        byte[] nameBytes = new byte[256];
        Cuda.check(cuDeviceGetName(nameBytes, nameBytes.length, device), "cuDeviceGetName");
        int length = 0;
        while (length < nameBytes.length && nameBytes[length] != 0) {
            length++;
        }
        this.name = new String(nameBytes, 0, length, StandardCharsets.UTF_8);
        this.major = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "compute capability");
        this.minor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "compute capability");
        this.multiprocessors = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "multiprocessors");
        this.totalMemory = totalMemory(device);
    }

    /** How many CUDA devices the driver sees; fails with "no CUDA device found" when there is no driver. */
    public static int count() {
        Cuda.initialize();
        int[] count = new int[1];
        Cuda.check(cuDeviceGetCount(count), "cuDeviceGetCount");
        return count[0];
    }

    /** Bytes of memory on cuda:{@code ordinal}, read without opening a context on it. */
    public static long totalMemory(int ordinal) {
        Cuda.initialize();
        CUdevice device = new CUdevice();
        Cuda.check(cuDeviceGet(device, ordinal), "cuDeviceGet(" + ordinal + ")");
        return totalMemory(device);
    }

    private static long totalMemory(CUdevice device) {
        long[] memory = new long[1];
        Cuda.check(cuDeviceTotalMem(memory, device), "cuDeviceTotalMem");
        return memory[0];
    }

    /** Opens cuda:{@code ordinal}: retains its primary context and makes it current on this thread. */
    public static CudaDevice open(int ordinal) {
        int count = count();
        if (count == 0) {
            throw new CudaException("no CUDA device found: the driver is installed but reports no GPU");
        }
        if (ordinal < 0 || ordinal >= count) {
            throw new IllegalArgumentException("cuda:" + ordinal + " does not exist: this machine has " + count
                    + " CUDA device" + (count == 1 ? " (cuda:0)" : "s (cuda:0 .. cuda:" + (count - 1) + ")"));
        }
        CUdevice device = new CUdevice();
        Cuda.check(cuDeviceGet(device, ordinal), "cuDeviceGet(" + ordinal + ")");
        CUcontext context = new CUcontext();
        Cuda.check(cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain(cuda:" + ordinal + ")");
        Cuda.check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
        return new CudaDevice(ordinal, device, context);
    }

    /** Makes this device's context current on the calling thread. */
    public void makeCurrent() {
        Cuda.check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    public int ordinal() {
        return ordinal;
    }

    public String name() {
        return name;
    }

    /** Compute capability as major · 10 + minor: 80 for A100, 90 for H100. */
    public int computeCapability() {
        return major * 10 + minor;
    }

    public int multiprocessors() {
        return multiprocessors;
    }

    public long totalMemory() {
        return totalMemory;
    }

    /** Bytes of device memory free now. */
    public long freeMemory() {
        long[] free = new long[1];
        long[] total = new long[1];
        Cuda.check(cuMemGetInfo(free, total), "cuMemGetInfo");
        return free[0];
    }

    /** The driver's CUDA version, e.g. 13000 for 13.0. */
    public static int driverVersion() {
        Cuda.initialize();
        int[] version = new int[1];
        Cuda.check(cuDriverGetVersion(version), "cuDriverGetVersion");
        return version[0];
    }

    /** "cuda:0 (NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB)". */
    public String description() {
        return "cuda:" + ordinal + " (" + name + ", sm_" + major + minor + ", " + multiprocessors + " SMs, "
                + String.format("%.1f GiB", totalMemory / (double) (1L << 30)) + ")";
    }

    /** Coil's kernels, loaded into this context on first use. */
    public synchronized KernelModule kernels() {
        if (kernels == null) {
            kernels = KernelModule.load(description(), computeCapability(), multiprocessors);
        }
        return kernels;
    }

    public DeviceBuffer allocate(long bytes) {
        return DeviceBuffer.allocate(bytes);
    }

    public DeviceBuffer allocateFloats(long count) {
        return DeviceBuffer.allocate(4 * count);
    }

    /** A new device buffer holding a copy of {@code values}. */
    public DeviceBuffer upload(float[] values) {
        DeviceBuffer buffer = allocateFloats(values.length);
        buffer.copyFrom(values);
        return buffer;
    }

    public DeviceBuffer upload(int[] values) {
        DeviceBuffer buffer = allocate(4L * values.length);
        buffer.copyFrom(values);
        return buffer;
    }

    public PinnedBuffer allocatePinned(long bytes) {
        return new PinnedBuffer(bytes);
    }

    /**
     * {@code buffer} when it holds {@code bytes}, else a new one of at least {@code least} bytes,
     * the old one freed once every queued copy from or into it is done.
     */
    public PinnedBuffer pinnedAtLeast(PinnedBuffer buffer, long bytes, long least) {
        if (buffer != null && buffer.bytes() >= bytes) {
            return buffer;
        }
        if (buffer != null) {
            synchronize();
            buffer.close();
        }
        return allocatePinned(Math.max(bytes, least));
    }

    public CudaStream newStream() {
        return new CudaStream();
    }

    public CudaEvent newEvent() {
        return new CudaEvent();
    }

    /** Waits for all work on every stream of this context. */
    public void synchronize() {
        Cuda.check(cuCtxSynchronize(), "cuCtxSynchronize");
    }

    private int attribute(int attribute, String what) {
        int[] value = new int[1];
        Cuda.check(cuDeviceGetAttribute(value, attribute, device), "cuDeviceGetAttribute(" + what + ")");
        return value[0];
    }

    /**
     * Lets this device's kernels and copies reach {@code peer}'s memory directly (over NVLink or
     * PCIe) where the hardware allows; returns false where it does not, and copies between the two
     * then go through the host. Call once per ordered pair; the same device is always reachable.
     */
    public boolean enablePeerAccess(CudaDevice peer) {
        if (peer.ordinal == ordinal) {
            return true;
        }
        int[] possible = new int[1];
        Cuda.check(jcuda.driver.JCudaDriver.cuDeviceCanAccessPeer(possible, device, peer.device),
                "cuDeviceCanAccessPeer");
        if (possible[0] == 0) {
            return false;
        }
        makeCurrent();
        int result = jcuda.driver.JCudaDriver.cuCtxEnablePeerAccess(peer.context, 0);
        if (result != jcuda.driver.CUresult.CUDA_SUCCESS
                && result != jcuda.driver.CUresult.CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) {
            Cuda.check(result, "cuCtxEnablePeerAccess(cuda:" + ordinal + " → cuda:" + peer.ordinal + ")");
        }
        return true;
    }

    /**
     * Queues a copy of {@code bytes} from {@code source} on {@code sourceDevice} to
     * {@code destination} on {@code destinationDevice}, on {@code stream} (a stream of either).
     */
    public static void copyPeerAsync(DeviceBuffer destination, CudaDevice destinationDevice, DeviceBuffer source,
            CudaDevice sourceDevice, long bytes, CudaStream stream) {
        if (bytes == 0) {
            return;
        }
        destination.requireBytes(bytes, "the peer copy's destination");
        source.requireBytes(bytes, "the peer copy's source");
        if (destinationDevice.ordinal == sourceDevice.ordinal) {
            Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync(destination.pointer(), source.pointer(), bytes,
                    stream.handle()), "cuMemcpyDtoDAsync of " + bytes + " bytes");
            return;
        }
        Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyPeerAsync(destination.pointer(), destinationDevice.context,
                source.pointer(), sourceDevice.context, bytes, stream.handle()),
                "cuMemcpyPeerAsync of " + bytes + " bytes, cuda:" + sourceDevice.ordinal + " → cuda:"
                        + destinationDevice.ordinal);
    }

    /** Unloads the kernels and releases the primary context (buffers, streams and events must be closed first). */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (kernels != null) {
            kernels.close();
        }
        Cuda.check(cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease");
    }
}
