package dev.coil.engine.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Loading the driver and checking results. Every driver call in this package goes through
 * {@link #check}, so a failure names the call and the CUDA error instead of surfacing later as
 * wrong numbers.
 */
final class Cuda {

    private static boolean initialized;

    private Cuda() {}

    /** Throws with {@code call} and the error's name unless result is CUDA_SUCCESS. */
    static void check(int result, String call) {
        if (result != CUresult.CUDA_SUCCESS) {
            throw new CudaException(call + " failed: " + errorName(result), result, null);
        }
    }

    static String errorName(int result) {
        return CUresult.stringFor(result);
    }

    /**
     * Loads the driver library and runs cuInit once. Fails with "no CUDA device found" when the
     * NVIDIA driver is not installed or sees no GPU.
     */
    static synchronized void initialize() {
        if (initialized) {
            return;
        }
        // Look for the driver before JCuda does: its own failure is a page of nested stack traces.
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup.libraryLookup("libcuda.so.1", arena);
        } catch (IllegalArgumentException absent) {
            throw new CudaException("no CUDA device found: the NVIDIA driver library libcuda.so.1 is not installed "
                    + "or not on the library path", absent);
        }
        int result;
        try {
            result = JCudaDriver.cuInit(0);
        } catch (LinkageError error) {
            throw new CudaException("no CUDA device found: JCuda's native driver binding could not be loaded ("
                    + error.getMessage().lines().findFirst().orElse("") + ")", error);
        }
        if (result == CUresult.CUDA_ERROR_NO_DEVICE) {
            throw new CudaException("no CUDA device found: cuInit reports CUDA_ERROR_NO_DEVICE", result, null);
        }
        check(result, "cuInit");
        initialized = true;
    }
}
