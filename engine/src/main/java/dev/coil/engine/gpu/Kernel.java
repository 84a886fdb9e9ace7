package dev.coil.engine.gpu;

import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static jcuda.driver.JCudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor;

import jcuda.NativePointerObject;
import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;

/**
 * One {@code extern "C"} function of the kernel module, and its launch. Arguments are passed in
 * the kernel's parameter order: a {@link DeviceBuffer} as its address, null as a null pointer,
 * Integer as int, Long as long long, Float as float.
 *
 * <p>With {@code -Dcoil.cuda.checkLaunches=true} every launch waits for its kernel and reports a
 * fault under the kernel's name (slow; for tests and debugging). Otherwise a fault surfaces at the
 * next synchronization.
 */
public final class Kernel {

    private static final boolean CHECK_LAUNCHES = Boolean.getBoolean("coil.cuda.checkLaunches");

    /** {@code -Dcoil.cuda.programmaticLaunch=false} launches every kernel the plain way (read at each launch). */
    public static final String PROGRAMMATIC_PROPERTY = "coil.cuda.programmaticLaunch";

    /**
     * {@code -Dcoil.cuda.driverLaunch=false} launches the plain kernels through JCuda's
     * cuLaunchKernel instead of {@link DriverLaunch} (read at each launch), for comparisons.
     */
    public static final String DRIVER_LAUNCH_PROPERTY = "coil.cuda.driverLaunch";

    private final String name;
    private final CUfunction function;
    /** The CUfunction's value, for {@link DriverLaunch}. */
    private final long functionAddress;
    private final boolean programmatic;
    private boolean waitsForPrevious;

    Kernel(String name, CUfunction function, boolean programmatic) {
        this.name = name;
        this.function = function;
        this.functionAddress = NativeHandles.value(function);
        this.programmatic = programmatic && DriverLaunch.available();
    }

    public String name() {
        return name;
    }

    /** Lets a launch ask for more than 48 KiB of dynamic shared memory. */
    public void allowDynamicSharedBytes(int bytes) {
        Cuda.check(cuFuncSetAttribute(function, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes), "cuFuncSetAttribute(" + name + ", max dynamic shared memory " + bytes + ")");
    }

    /** Lets a launch use clusters of more than 8 blocks (CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED; sm_90). */
    public void allowNonPortableClusters() {
        Cuda.check(cuFuncSetAttribute(function, 14, 1), "cuFuncSetAttribute(" + name + ", non-portable clusters)");
    }

    /** How many blocks of {@code threads} with {@code dynamicSharedBytes} fit one multiprocessor at once. */
    public int residentBlocks(int threads, int dynamicSharedBytes) {
        int[] blocks = new int[1];
        Cuda.check(cuOccupancyMaxActiveBlocksPerMultiprocessor(blocks, function, threads, dynamicSharedBytes),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor(" + name + ")");
        return blocks[0];
    }

    /**
     * Marks the kernel as one that passes {@code coil_grid_dependency_wait} (common.cuh) before it
     * touches anything earlier kernels wrote or read: from now on it is launched with programmatic
     * stream serialization where the device has it (sm_90 and later), so that it starts while the
     * kernel before it finishes. Returns this kernel.
     */
    public Kernel waitsForPreviousKernel() {
        waitsForPrevious = true;
        return this;
    }

    /** Queues the kernel on {@code stream} over a grid of gridX × gridY × gridZ blocks of {@code threads}. */
    public void launch(CudaStream stream, int gridX, int gridY, int gridZ, int threads, int sharedBytes,
            Object... arguments) {
        if (gridX <= 0 || gridY <= 0 || gridZ <= 0 || gridY > 65535 || gridZ > 65535) {
            throw new IllegalArgumentException("kernel " + name + ": grid " + gridX + " × " + gridY + " × " + gridZ
                    + " is empty or beyond CUDA's limits (y and z at most 65535)");
        }
        // Each argument as the 8 bytes (an address or a long) or 4 bytes (an int or a float) it takes.
        long[] bits = new long[arguments.length];
        boolean[] fourBytes = new boolean[arguments.length];
        for (int i = 0; i < arguments.length; i++) {
            bits[i] = bits(arguments[i], i);
            fourBytes[i] = arguments[i] instanceof Integer || arguments[i] instanceof Float;
        }
        int result;
        boolean dependent = waitsForPrevious && programmatic
                && !"false".equalsIgnoreCase(System.getProperty(PROGRAMMATIC_PROPERTY));
        if (dependent || (DriverLaunch.available()
                && !"false".equalsIgnoreCase(System.getProperty(DRIVER_LAUNCH_PROPERTY)))) {
            result = DriverLaunch.launch(functionAddress, stream.address(), gridX, gridY, gridZ, threads, sharedBytes,
                    bits, fourBytes, dependent);
        } else {
            NativePointerObject[] parameters = new NativePointerObject[arguments.length];
            for (int i = 0; i < arguments.length; i++) {
                parameters[i] = fourBytes[i] ? Pointer.to(new int[] {(int) bits[i]}) : Pointer.to(new long[] {bits[i]});
            }
            result = cuLaunchKernel(function, gridX, gridY, gridZ, threads, 1, 1, sharedBytes, stream.handle(),
                    Pointer.to(parameters), null);
        }
        Cuda.check(result, "launch of kernel " + name);
        if (CHECK_LAUNCHES) {
            Cuda.check(cuStreamSynchronize(stream.handle()), "kernel " + name);
        }
    }

    /**
     * Queues the kernel over {@code gridX} blocks of {@code threads} in thread-block clusters of
     * {@code clusterX} blocks (sm_90; gridX a multiple of it), through cuLaunchKernelEx, with
     * programmatic stream serialization as {@link #launch} gives it.
     */
    public void launchClusters(CudaStream stream, int gridX, int clusterX, int threads, int sharedBytes,
            Object... arguments) {
        if (gridX <= 0 || clusterX < 1 || gridX % clusterX != 0) {
            throw new IllegalArgumentException("kernel " + name + ": a grid of " + gridX
                    + " blocks does not split into clusters of " + clusterX);
        }
        if (!DriverLaunch.available()) {
            throw new IllegalStateException("kernel " + name + ": cluster launches need cuLaunchKernelEx");
        }
        long[] bits = new long[arguments.length];
        boolean[] fourBytes = new boolean[arguments.length];
        for (int i = 0; i < arguments.length; i++) {
            bits[i] = bits(arguments[i], i);
            fourBytes[i] = arguments[i] instanceof Integer || arguments[i] instanceof Float;
        }
        boolean dependent = waitsForPrevious && programmatic
                && !"false".equalsIgnoreCase(System.getProperty(PROGRAMMATIC_PROPERTY));
        Cuda.check(DriverLaunch.launch(functionAddress, stream.address(), gridX, 1, 1, threads, sharedBytes, bits,
                fourBytes, dependent, clusterX), "launch of kernel " + name + " in clusters of " + clusterX);
        if (CHECK_LAUNCHES) {
            Cuda.check(cuStreamSynchronize(stream.handle()), "kernel " + name);
        }
    }

    /** Enough blocks of {@code threads} for a grid-stride loop over n elements, capped where more add nothing. */
    public static int blocksFor(long n, int threads) {
        return (int) Math.max(1, Math.min((n + threads - 1) / threads, 1 << 20));
    }

    private long bits(Object argument, int index) {
        return switch (argument) {
            case null -> 0L;
            case DeviceBuffer buffer -> buffer.address();
            case Integer value -> value;
            case Long value -> value;
            case Float value -> Float.floatToRawIntBits(value);
            default -> throw new IllegalArgumentException("kernel " + name + ": argument " + index + " is a "
                    + argument.getClass().getSimpleName() + "; supported: DeviceBuffer, null, Integer, Long, Float");
        };
    }
}
