package dev.coil.engine.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.reflect.Method;
import jcuda.NativePointerObject;

/**
 * {@code cuLaunchKernelEx} with the programmatic-stream-serialization attribute (programmatic
 * dependent launch, sm_90): the kernel may start while the kernel before it on the stream
 * finishes, and must itself wait ({@code griddepcontrol.wait}) before reading what that kernel
 * wrote. JCuda 12.6 has no binding for it, so it is called through Java's FFM from the driver
 * library JCuda already loaded. Captured into CUDA graphs as a programmatic edge.
 */
final class ProgrammaticLaunch {

    /** CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION (cuda.h). */
    private static final int PROGRAMMATIC_STREAM_SERIALIZATION = 6;
    /** sizeof(CUlaunchConfig): 7 unsigned ints, padding, the stream, the attributes pointer and their count. */
    private static final long CONFIG_BYTES = 56;
    /** sizeof(CUlaunchAttribute): the id padded to 8 bytes, then a 64-byte value union. */
    private static final long ATTRIBUTE_BYTES = 72;

    private static final MethodHandle LAUNCH;
    private static final Method NATIVE_POINTER;

    static {
        MethodHandle launch = null;
        Method nativePointer = null;
        try {
            SymbolLookup driver = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
            launch = Linker.nativeLinker().downcallHandle(driver.findOrThrow("cuLaunchKernelEx"),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS,
                            ValueLayout.ADDRESS, ValueLayout.ADDRESS));
            nativePointer = NativePointerObject.class.getDeclaredMethod("getNativePointer");
            nativePointer.setAccessible(true);
        } catch (RuntimeException | ReflectiveOperationException | LinkageError e) {
            launch = null;
            nativePointer = null;
        }
        LAUNCH = launch;
        NATIVE_POINTER = nativePointer;
    }

    private ProgrammaticLaunch() {
    }

    /** True where the driver offers cuLaunchKernelEx and JCuda's handles can be read. */
    static boolean available() {
        return LAUNCH != null;
    }

    /**
     * Queues {@code function} over gridX × gridY × gridZ blocks of {@code threads}; each argument is 8 bytes as
     * {@link Kernel} encodes it (an address, a long, or an int or float in the low 4 bytes).
     */
    static int launch(NativePointerObject function, NativePointerObject stream, int gridX, int gridY, int gridZ,
            int threads, int sharedBytes, long[] argumentBits, boolean[] fourBytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment values = arena.allocate(8L * Math.max(1, argumentBits.length), 8);
            MemorySegment pointers = arena.allocate(8L * Math.max(1, argumentBits.length), 8);
            for (int i = 0; i < argumentBits.length; i++) {
                if (fourBytes[i]) {
                    values.set(ValueLayout.JAVA_INT, 8L * i, (int) argumentBits[i]);
                } else {
                    values.set(ValueLayout.JAVA_LONG, 8L * i, argumentBits[i]);
                }
                pointers.set(ValueLayout.ADDRESS, 8L * i, values.asSlice(8L * i));
            }
            MemorySegment attribute = arena.allocate(ATTRIBUTE_BYTES, 8);
            attribute.set(ValueLayout.JAVA_INT, 0, PROGRAMMATIC_STREAM_SERIALIZATION);
            attribute.set(ValueLayout.JAVA_INT, 8, 1);
            MemorySegment config = arena.allocate(CONFIG_BYTES, 8);
            config.set(ValueLayout.JAVA_INT, 0, gridX);
            config.set(ValueLayout.JAVA_INT, 4, gridY);
            config.set(ValueLayout.JAVA_INT, 8, gridZ);
            config.set(ValueLayout.JAVA_INT, 12, threads);
            config.set(ValueLayout.JAVA_INT, 16, 1);
            config.set(ValueLayout.JAVA_INT, 20, 1);
            config.set(ValueLayout.JAVA_INT, 24, sharedBytes);
            config.set(ValueLayout.JAVA_LONG, 32, address(stream));
            config.set(ValueLayout.ADDRESS, 40, attribute);
            config.set(ValueLayout.JAVA_INT, 48, 1);
            return (int) LAUNCH.invokeExact(config, MemorySegment.ofAddress(address(function)), pointers,
                    MemorySegment.NULL);
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

    private static long address(NativePointerObject handle) throws ReflectiveOperationException {
        return (long) NATIVE_POINTER.invoke(handle);
    }
}
