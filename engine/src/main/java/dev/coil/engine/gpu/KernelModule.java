package dev.coil.engine.gpu;

import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleGetGlobal;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;

/**
 * Coil's CUDA kernels: the fatbin that the build compiled from engine/src/main/cuda and put in the
 * jar (machine code for sm_80 and sm_90a, PTX for compute_90), loaded into the device's context,
 * with its functions looked up by name once.
 */
public final class KernelModule implements AutoCloseable {

    /** Where the build puts the fatbin inside the jar. */
    public static final String RESOURCE = "coil/cuda/coil.fatbin";

    /**
     * {@code -Dcoil.cuda.gemvOverlap} (on unless {@code false}): the decode products let the next
     * kernel start before their own wait instead of after it (common.cuh, coil_dependents_early),
     * and one-row products of more than 2048 columns take the kernel that fits three blocks a
     * multiprocessor, so that the next launches can be resident and load their weights earlier
     * (docs/performance.md). Results are the same either way.
     */
    public static final String GEMV_OVERLAP_PROPERTY = "coil.cuda.gemvOverlap";

    /**
     * {@code -Dcoil.cuda.earlyKinds=N}: with the overlap on, which decode products start the next
     * kernel before their wait: 1 those of one column a warp, 2 the one-row products of two columns
     * a warp, 4 the Mamba-2 state update; a sum of them (common.cuh, COIL_EARLY_*). Default all
     * three: with the state update too, out_proj's launch is resident and loading its weights while
     * in_proj still runs (a batch-1 step about 4 µs shorter on an H100, docs/performance.md).
     */
    public static final String EARLY_KINDS_PROPERTY = "coil.cuda.earlyKinds";

    private static final int EARLY_KINDS_DEFAULT = 7;

    /** Whether {@link #GEMV_OVERLAP_PROPERTY} is on (read when a module loads or a launcher is made). */
    public static boolean gemvOverlap() {
        return !"false".equalsIgnoreCase(System.getProperty(GEMV_OVERLAP_PROPERTY, "true"));
    }

    static final String TARGETS = "sm_80 and sm_90a machine code plus compute_90 PTX";

    private final CUmodule module;
    private final Map<String, Kernel> kernels = new ConcurrentHashMap<>();
    private boolean unloaded;

    private final boolean programmatic;
    private final int multiprocessors;

    private KernelModule(CUmodule module, boolean programmatic, int multiprocessors) {
        this.module = module;
        this.programmatic = programmatic;
        this.multiprocessors = multiprocessors;
    }

    /** Whether kernels may be launched in thread-block clusters (sm_90 and later, through cuLaunchKernelEx). */
    public boolean clusterLaunches() {
        return programmatic && DriverLaunch.available();
    }

    /** The device's multiprocessors. */
    public int multiprocessors() {
        return multiprocessors;
    }

    /** Whether this jar carries the kernels (it does when it was built where nvcc was found). */
    public static boolean isBuilt() {
        return KernelModule.class.getClassLoader().getResource(RESOURCE) != null;
    }

    /** The fatbin's bytes from the class path, or a clear failure when the build had no nvcc. */
    static byte[] image(ClassLoader loader, String resource) {
        try (InputStream in = loader.getResourceAsStream(resource)) {
            if (in == null) {
                throw new CudaException("the GPU kernels were not built into this jar: " + resource + " is missing "
                        + "(build with nvcc on PATH or CUDA_HOME set; without them the build skips the kernels)");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + resource + " from the class path", e);
        }
    }

    /** Loads the kernels into the current context (the device's primary context). */
    static KernelModule load(String deviceDescription, int computeCapability, int multiprocessors) {
        byte[] image = image(KernelModule.class.getClassLoader(), RESOURCE);
        CUmodule module = new CUmodule();
        int result = cuModuleLoadData(module, image);
        if (result == CUresult.CUDA_ERROR_NO_BINARY_FOR_GPU || result == CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION
                || result == CUresult.CUDA_ERROR_INVALID_PTX) {
            throw new CudaException("the GPU kernels in this jar (" + TARGETS + ") do not run on " + deviceDescription
                    + ": " + Cuda.errorName(result) + "; rebuild with an nvcc that targets it", result, null);
        }
        Cuda.check(result, "cuModuleLoadData of " + RESOURCE + " (" + image.length + " bytes)");
        KernelModule loaded = new KernelModule(module, computeCapability >= 90, multiprocessors);
        if (gemvOverlap()) {
            int kinds = Integer.getInteger(EARLY_KINDS_PROPERTY, EARLY_KINDS_DEFAULT);
            Cuda.check(cuMemcpyHtoD(loaded.global("coil_dependents_early").address(), Pointer.to(new int[] {kinds}),
                    Sizeof.INT), "cuMemcpyHtoD(coil_dependents_early)");
        }
        return loaded;
    }

    /** The kernel named {@code name} (an extern "C" function in engine/src/main/cuda). */
    public Kernel kernel(String name) {
        return kernels.computeIfAbsent(name, this::lookup);
    }

    private Kernel lookup(String name) {
        CUfunction function = new CUfunction();
        int result = cuModuleGetFunction(function, module, name);
        if (result == CUresult.CUDA_ERROR_NOT_FOUND) {
            throw new CudaException("kernel '" + name + "' is not in " + RESOURCE
                    + " (a jar built from older CUDA sources?)", result, null);
        }
        Cuda.check(result, "cuModuleGetFunction(" + name + ")");
        return new Kernel(name, function, programmatic);
    }

    /** A {@code __device__} variable of the module: its address and its size in bytes. */
    record Global(CUdeviceptr address, long bytes) {
    }

    /** The module's {@code __device__} variable {@code name} ({@link DecodeTrace}'s counters and records). */
    Global global(String name) {
        CUdeviceptr address = new CUdeviceptr();
        long[] bytes = new long[1];
        Cuda.check(cuModuleGetGlobal(address, bytes, module, name), "cuModuleGetGlobal(" + name + ")");
        return new Global(address, bytes[0]);
    }

    @Override
    public void close() {
        if (!unloaded) {
            unloaded = true;
            Cuda.check(cuModuleUnload(module), "cuModuleUnload");
        }
    }
}
