package dev.coil.engine.gpu.blas;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaException;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.load.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A cuBLAS handle on a device's primary context, bound to one stream at a time. cuBLAS speaks
 * column-major; {@link GpuMatmul} maps Coil's row-major products onto it. Products go through
 * cuBLASLt with a kept algorithm per weight shape and token bucket ({@link CublasLt}) where the
 * installed cuBLAS has it, else through cublasGemmEx; {@code -Dcoil.cuda.cublasLt=false} keeps
 * them all on cublasGemmEx.
 */
public final class Cublas implements AutoCloseable {

    public static final String LT_PROPERTY = "coil.cuda.cublasLt";

    static final int OP_N = 0;
    static final int OP_T = 1;
    static final int CUDA_R_32F = 0;
    static final int CUDA_R_16F = 2;
    static final int CUDA_R_16BF = 14;
    static final int COMPUTE_32F = 68;
    static final int GEMM_DEFAULT = -1;

    private final CublasLibrary library;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle;
    private final MemorySegment one;
    private final MemorySegment zero;
    /** Null where cuBLASLt is absent or switched off. */
    private final CublasLt lt;
    private DeviceBuffer workspace;
    private long boundStream = -1;
    /** Products so far, and the host nanoseconds their calls took (with any search for their kernel). */
    private long calls;
    private long callNanos;
    private boolean closed;

    private Cublas(CublasLibrary library, MemorySegment handle) {
        this.library = library;
        this.handle = handle;
        this.one = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1f);
        this.zero = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 0f);
        this.lt = "false".equalsIgnoreCase(System.getProperty(LT_PROPERTY, "true")) ? null : CublasLt.create(library);
    }

    /** Loads the installed cuBLAS (see {@link CublasLocator}) and creates a handle in {@code device}'s context. */
    public static Cublas create(CudaDevice device) {
        CublasLibrary library = CublasLibrary.load();
        device.makeCurrent();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment slot = scratch.allocate(ValueLayout.ADDRESS);
            int status = (int) library.create.invokeExact(slot);
            library.check(status, "cublasCreate_v2");
            return new Cublas(library, slot.get(ValueLayout.ADDRESS, 0));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable e) {
            throw new CudaException("cublasCreate_v2 could not be called: " + e, e);
        }
    }

    /** The loaded library's path and version, e.g. "/usr/local/cuda/lib64/libcublas.so.13 (13.0.2)". */
    public String describe() {
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment version = scratch.allocate(ValueLayout.JAVA_INT);
            int status = (int) library.getVersion.invokeExact(handle, version);
            library.check(status, "cublasGetVersion_v2");
            int v = version.get(ValueLayout.JAVA_INT, 0);
            return library.path + " (" + v / 10000 + "." + v / 100 % 100 + "." + v % 100 + ")";
        } catch (CudaException e) {
            throw e;
        } catch (Throwable e) {
            throw new CudaException("cublasGetVersion_v2 could not be called: " + e, e);
        }
    }

    /**
     * Gives cuBLAS a workspace of its own to use from now on, instead of one it allocates: a product
     * captured into a CUDA graph must not allocate. Kept across {@link #bind} (which resets it).
     */
    public void useWorkspace(DeviceBuffer buffer) {
        this.workspace = buffer;
        if (boundStream != -1) {
            applyWorkspace();
        }
    }

    private void applyWorkspace() {
        try {
            int status = (int) library.setWorkspace.invokeExact(handle, MemorySegment.ofAddress(workspace.address()),
                    workspace.bytes());
            library.check(status, "cublasSetWorkspace_v2");
        } catch (CudaException e) {
            throw e;
        } catch (Throwable e) {
            throw new CudaException("cublasSetWorkspace_v2 could not be called: " + e, e);
        }
    }

    /** Routes this handle's next calls to {@code stream}. */
    public void bind(CudaStream stream) {
        if (boundStream == stream.address()) {
            return;
        }
        try {
            int status = (int) library.setStream.invokeExact(handle, MemorySegment.ofAddress(stream.address()));
            library.check(status, "cublasSetStream_v2");
            boundStream = stream.address();
            if (workspace != null) {
                applyWorkspace();
            }
        } catch (CudaException e) {
            throw e;
        } catch (Throwable e) {
            throw new CudaException("cublasSetStream_v2 could not be called: " + e, e);
        }
    }

    /**
     * Column-major C (m, n) = op(A) · op(B) (+ C when {@code accumulate}), f32 accumulation, on
     * {@code stream}. A, B in {@code inputType}; C in f32. This is cublasGemmEx with alpha 1 and
     * beta 0 or 1, or the same product through cuBLASLt with its bucket's algorithm ({@link CublasLt}).
     */
    public void gemmEx(CudaStream stream, boolean transposeA, boolean transposeB, int m, int n, int k,
            DeviceBuffer a, int lda, DeviceBuffer b, int ldb, DType inputType, DeviceBuffer c, int ldc,
            boolean accumulate) {
        bind(stream);
        int type = switch (inputType) {
            case BF16 -> CUDA_R_16BF;
            case F16 -> CUDA_R_16F;
            case F32 -> CUDA_R_32F;
        };
        // invokeExact matches static types: a conditional expression would be typed Object here.
        MemorySegment beta = accumulate ? one : zero;
        long start = System.nanoTime();
        try {
            if (lt != null && lt.matmul(stream.address(), transposeA, transposeB, m, n, k, a.address(), lda,
                    b.address(), ldb, type, c.address(), ldc, one, beta, accumulate,
                    workspace == null ? 0 : workspace.address(), workspace == null ? 0 : workspace.bytes())) {
                return;
            }
            int status = (int) library.gemmEx.invokeExact(handle, transposeA ? OP_T : OP_N, transposeB ? OP_T : OP_N,
                    m, n, k, one, MemorySegment.ofAddress(a.address()), type, lda,
                    MemorySegment.ofAddress(b.address()), type, ldb, beta,
                    MemorySegment.ofAddress(c.address()), CUDA_R_32F, ldc, COMPUTE_32F, GEMM_DEFAULT);
            library.check(status, "cublasGemmEx(m " + m + ", n " + n + ", k " + k + ", " + inputType + ")");
        } catch (CudaException e) {
            throw e;
        } catch (Throwable e) {
            throw new CudaException("cublasGemmEx could not be called: " + e, e);
        } finally {
            calls++;
            callNanos += System.nanoTime() - start;
        }
    }

    /** True where products go through cuBLASLt (found and not switched off). */
    public boolean usesLt() {
        return lt != null;
    }

    /** cuBLASLt algorithm searches so far (one per weight shape, token bucket and workspace). */
    public long algorithmSearches() {
        return lt == null ? 0 : lt.searches();
    }

    /** Products so far, through cuBLASLt or cublasGemmEx. */
    public long calls() {
        return calls;
    }

    /** Host nanoseconds the products' calls took so far (the search for a new shape's kernel included). */
    public long callNanos() {
        return callNanos;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            if (lt != null) {
                lt.close();
            }
            int status = (int) library.destroy.invokeExact(handle);
            library.check(status, "cublasDestroy_v2");
        } catch (CudaException e) {
            throw e;
        } catch (Throwable e) {
            throw new CudaException("cublasDestroy_v2 could not be called: " + e, e);
        } finally {
            arena.close();
        }
    }
}
