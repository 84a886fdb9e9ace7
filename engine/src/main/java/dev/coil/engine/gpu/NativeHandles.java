package dev.coil.engine.gpu;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.reflect.Method;
import jcuda.NativePointerObject;

/**
 * The raw value behind a JCuda handle (a device address, a CUstream), for the libraries called
 * through FFM (cuBLAS) and for address arithmetic. JCuda keeps it in a protected field accessor.
 */
final class NativeHandles {

    private static final MethodHandle NATIVE_POINTER;

    static {
        try {
            Method method = NativePointerObject.class.getDeclaredMethod("getNativePointer");
            method.setAccessible(true);
            NATIVE_POINTER = MethodHandles.lookup().unreflect(method);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new ExceptionInInitializerError("cannot read JCuda native handles: " + e);
        }
    }

    private NativeHandles() {}

    /** The handle's native value: the address a CUdeviceptr or host Pointer was created with, or a CUstream. */
    static long value(NativePointerObject handle) {
        try {
            return (long) NATIVE_POINTER.invoke(handle);
        } catch (Throwable e) {
            throw new IllegalStateException("cannot read the native value of " + handle, e);
        }
    }
}
