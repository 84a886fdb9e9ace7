package dev.coil.engine.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Kernel launches through {@code cuLaunchKernelEx}, called with Java's FFM from the driver library
 * JCuda already loaded: JCuda 12.6 has no binding for it, and its {@code cuLaunchKernel} builds a
 * pointer object per argument and walks them through JNI, several µs a launch, which a prefill
 * step of hundreds of launches pays on the host. Optionally with the programmatic-stream-
 * serialization attribute (programmatic dependent launch, sm_90): the kernel may start while the
 * kernel before it on the stream finishes, and must itself wait ({@code griddepcontrol.wait})
 * before reading what that kernel wrote; captured into CUDA graphs as a programmatic edge.
 */
final class DriverLaunch {

    /** CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION (cuda.h). */
    private static final int PROGRAMMATIC_STREAM_SERIALIZATION = 6;
    /** CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION (cuda.h): the value holds the cluster's x, y and z. */
    private static final int CLUSTER_DIMENSION = 4;
    /** sizeof(CUlaunchConfig): 7 unsigned ints, padding, the stream, the attributes pointer and their count. */
    private static final long CONFIG_BYTES = 56;
    /** sizeof(CUlaunchAttribute): the id padded to 8 bytes, then a 64-byte value union. */
    private static final long ATTRIBUTE_BYTES = 72;
    /** Arguments a launch may pass (the widest kernel takes about 30). */
    private static final int MOST_ARGUMENTS = 64;
    /** Where config, attributes (up to two), argument values and their pointers lie in a thread's launch buffer. */
    private static final long ATTRIBUTE_AT = CONFIG_BYTES;
    private static final long VALUES_AT = ATTRIBUTE_AT + 2 * ATTRIBUTE_BYTES;
    private static final long POINTERS_AT = VALUES_AT + 8L * MOST_ARGUMENTS;
    private static final long BUFFER_BYTES = POINTERS_AT + 8L * MOST_ARGUMENTS;

    private static final MethodHandle LAUNCH;
    /** Per launching thread, one native buffer every launch of that thread reuses. */
    private static final ThreadLocal<MemorySegment> BUFFER = ThreadLocal.withInitial(
            () -> Arena.global().allocate(BUFFER_BYTES, 8));

    static {
        MethodHandle launch = null;
        try {
            SymbolLookup driver = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
            launch = Linker.nativeLinker().downcallHandle(driver.findOrThrow("cuLaunchKernelEx"),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS,
                            ValueLayout.ADDRESS, ValueLayout.ADDRESS));
        } catch (RuntimeException | LinkageError e) {
            launch = null;
        }
        LAUNCH = launch;
    }

    private DriverLaunch() {
    }

    /** True where the driver offers cuLaunchKernelEx. */
    static boolean available() {
        return LAUNCH != null;
    }

    /**
     * Queues the kernel at {@code function} (a CUfunction's value) on {@code stream} (a CUstream's
     * value) over gridX × gridY × gridZ blocks of {@code threads}; each argument is 8 bytes as
     * {@link Kernel} encodes it (an address, a long, or an int or float in the low 4 bytes).
     */
    static int launch(long function, long stream, int gridX, int gridY, int gridZ, int threads, int sharedBytes,
            long[] argumentBits, boolean[] fourBytes, boolean programmatic) {
        return launch(function, stream, gridX, gridY, gridZ, threads, sharedBytes, argumentBits, fourBytes,
                programmatic, 1);
    }

    /** As above, in thread-block clusters of {@code clusterX} blocks along x (1: no clusters; sm_90). */
    static int launch(long function, long stream, int gridX, int gridY, int gridZ, int threads, int sharedBytes,
            long[] argumentBits, boolean[] fourBytes, boolean programmatic, int clusterX) {
        if (argumentBits.length > MOST_ARGUMENTS) {
            throw new IllegalArgumentException(argumentBits.length + " kernel arguments; at most " + MOST_ARGUMENTS);
        }
        MemorySegment buffer = BUFFER.get();
        MemorySegment values = buffer.asSlice(VALUES_AT, 8L * MOST_ARGUMENTS);
        MemorySegment pointers = buffer.asSlice(POINTERS_AT, 8L * MOST_ARGUMENTS);
        for (int i = 0; i < argumentBits.length; i++) {
            if (fourBytes[i]) {
                values.set(ValueLayout.JAVA_INT, 8L * i, (int) argumentBits[i]);
            } else {
                values.set(ValueLayout.JAVA_LONG, 8L * i, argumentBits[i]);
            }
            pointers.set(ValueLayout.JAVA_LONG, 8L * i, values.address() + 8L * i);
        }
        MemorySegment attributes = buffer.asSlice(ATTRIBUTE_AT, 2 * ATTRIBUTE_BYTES);
        attributes.fill((byte) 0);
        int count = 0;
        if (programmatic) {
            attributes.set(ValueLayout.JAVA_INT, 0, PROGRAMMATIC_STREAM_SERIALIZATION);
            attributes.set(ValueLayout.JAVA_INT, 8, 1);
            count++;
        }
        if (clusterX > 1) {
            long at = count * ATTRIBUTE_BYTES;
            attributes.set(ValueLayout.JAVA_INT, at, CLUSTER_DIMENSION);
            attributes.set(ValueLayout.JAVA_INT, at + 8, clusterX);
            attributes.set(ValueLayout.JAVA_INT, at + 12, 1);
            attributes.set(ValueLayout.JAVA_INT, at + 16, 1);
            count++;
        }
        MemorySegment config = buffer.asSlice(0, CONFIG_BYTES);
        config.set(ValueLayout.JAVA_INT, 0, gridX);
        config.set(ValueLayout.JAVA_INT, 4, gridY);
        config.set(ValueLayout.JAVA_INT, 8, gridZ);
        config.set(ValueLayout.JAVA_INT, 12, threads);
        config.set(ValueLayout.JAVA_INT, 16, 1);
        config.set(ValueLayout.JAVA_INT, 20, 1);
        config.set(ValueLayout.JAVA_INT, 24, sharedBytes);
        config.set(ValueLayout.JAVA_LONG, 32, stream);
        config.set(ValueLayout.JAVA_LONG, 40, count > 0 ? attributes.address() : 0L);
        config.set(ValueLayout.JAVA_INT, 48, count);
        try {
            return (int) LAUNCH.invokeExact(config, MemorySegment.ofAddress(function), pointers, MemorySegment.NULL);
        } catch (Throwable e) {
            if (e instanceof RuntimeException runtime) {
                throw runtime;
            }
            if (e instanceof Error error) {
                throw error;
            }
            throw new IllegalStateException("cuLaunchKernelEx", e);
        }
    }
}
