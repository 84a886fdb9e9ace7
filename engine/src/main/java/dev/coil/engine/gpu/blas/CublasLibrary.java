package dev.coil.engine.gpu.blas;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.coil.engine.gpu.CudaException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * The few cuBLAS entry points Coil calls, bound through FFM (Java's foreign function interface) to
 * the installed libcublas, whichever major version it is: the binding is by C signature, which
 * cuBLAS 12 and 13 share for these functions. Loaded once per process.
 */
final class CublasLibrary {

    private static CublasLibrary loaded;

    final String path;
    final MethodHandle create;       // cublasStatus_t cublasCreate_v2(cublasHandle_t*)
    final MethodHandle destroy;      // cublasStatus_t cublasDestroy_v2(cublasHandle_t)
    final MethodHandle setStream;    // cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t)
    final MethodHandle setWorkspace; // cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void*, size_t)
    final MethodHandle getVersion;   // cublasStatus_t cublasGetVersion_v2(cublasHandle_t, int*)
    final MethodHandle statusString; // const char* cublasGetStatusString(cublasStatus_t)
    final MethodHandle gemmEx;       // see Cublas.gemmEx
    /** cuBLASLt's matmul and algorithm search, or null where libcublasLt was not found beside libcublas. */
    final CublasLtLibrary lt;

    private CublasLibrary(String path, SymbolLookup symbols, CublasLtLibrary lt) {
        this.path = path;
        this.lt = lt;
        Linker linker = Linker.nativeLinker();
        create = bind(linker, symbols, "cublasCreate_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        destroy = bind(linker, symbols, "cublasDestroy_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        setStream = bind(linker, symbols, "cublasSetStream_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        setWorkspace = bind(linker, symbols, "cublasSetWorkspace_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));
        getVersion = bind(linker, symbols, "cublasGetVersion_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        statusString = bind(linker, symbols, "cublasGetStatusString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        gemmEx = bind(linker, symbols, "cublasGemmEx", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, JAVA_INT, JAVA_INT,          // handle, transa, transb
                JAVA_INT, JAVA_INT, JAVA_INT,          // m, n, k
                ADDRESS,                               // alpha (host)
                ADDRESS, JAVA_INT, JAVA_INT,           // A, Atype, lda
                ADDRESS, JAVA_INT, JAVA_INT,           // B, Btype, ldb
                ADDRESS,                               // beta (host)
                ADDRESS, JAVA_INT, JAVA_INT,           // C, Ctype, ldc
                JAVA_INT, JAVA_INT));                  // computeType, algo
    }

    /** Finds and loads cuBLAS once; later calls return the same binding. */
    static synchronized CublasLibrary load() {
        if (loaded == null) {
            CublasLocator.Found found = CublasLocator.system().locate();
            Arena arena = Arena.global();
            try {
                // libcublas needs libcublasLt; loading it from the same folder first satisfies that
                // dependency by name even where the folder is not on the linker's search path.
                CublasLtLibrary lt = null;
                if (found.cublasLt() != null) {
                    lt = CublasLtLibrary.bind(SymbolLookup.libraryLookup(found.cublasLt(), arena));
                }
                SymbolLookup symbols = SymbolLookup.libraryLookup(found.cublas(), arena);
                loaded = new CublasLibrary(found.cublas().toString(), symbols, lt);
            } catch (IllegalArgumentException e) {
                throw new CudaException("cuBLAS at " + found.cublas() + " could not be loaded: " + e.getMessage(), e);
            }
        }
        return loaded;
    }

    /** Throws a CudaException naming {@code call} and the status where a cuBLAS or cuBLASLt call failed. */
    void check(int status, String call) {
        if (status != 0) {
            throw new CudaException(call + " failed: " + status(status), status, null);
        }
    }

    /** The name of a cublasStatus_t, e.g. CUBLAS_STATUS_INVALID_VALUE. */
    String status(int status) {
        try {
            MemorySegment text = (MemorySegment) statusString.invokeExact(status);
            return text.equals(MemorySegment.NULL) ? "cuBLAS status " + status
                    : text.reinterpret(256).getString(0) + " (" + status + ")";
        } catch (Throwable e) {
            return "cuBLAS status " + status;
        }
    }

    private MethodHandle bind(Linker linker, SymbolLookup symbols, String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = symbols.find(name).orElseThrow(() -> new CudaException(
                "cuBLAS at " + path + " has no function " + name + " (cuBLAS 12 or newer is needed)"));
        return linker.downcallHandle(symbol, descriptor);
    }
}
