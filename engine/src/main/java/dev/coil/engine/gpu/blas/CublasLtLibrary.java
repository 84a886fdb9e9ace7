package dev.coil.engine.gpu.blas;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * The cuBLASLt entry points {@link CublasLt} calls, bound through FFM to the libcublasLt loaded beside
 * libcublas (same C signatures in cuBLAS 12 and 13). Absent (null from {@link #bind}) where that
 * library lacks one of them: products then go through cublasGemmEx alone.
 */
final class CublasLtLibrary {

    // cublasLtMatmulDescAttributes_t, cublasLtMatmulPreferenceAttributes_t (cublasLt.h)
    static final int DESC_TRANSA = 3;
    static final int DESC_TRANSB = 4;
    static final int PREFERENCE_MAX_WORKSPACE_BYTES = 1;
    /** sizeof(cublasLtMatmulAlgo_t): eight 64-bit words. */
    static final long ALGO_BYTES = 64;
    /** sizeof(cublasLtMatmulHeuristicResult_t): the algo, size_t workspaceSize, int state, float wavesCount, int[4]. */
    static final long HEURISTIC_RESULT_BYTES = 96;
    /** Offset of workspaceSize and of state in a heuristic result. */
    static final long RESULT_WORKSPACE_AT = 64;
    static final long RESULT_STATE_AT = 72;

    final MethodHandle create;            // cublasLtCreate(cublasLtHandle_t*)
    final MethodHandle destroy;           // cublasLtDestroy(handle)
    final MethodHandle descCreate;        // cublasLtMatmulDescCreate(desc*, cublasComputeType_t, cudaDataType_t scale)
    final MethodHandle descDestroy;       // cublasLtMatmulDescDestroy(desc)
    final MethodHandle descSetAttribute;  // cublasLtMatmulDescSetAttribute(desc, attr, const void*, size_t)
    // cublasLtMatrixLayoutCreate(layout*, cudaDataType_t, uint64 rows, uint64 cols, int64 ld)
    final MethodHandle layoutCreate;
    final MethodHandle layoutDestroy;     // cublasLtMatrixLayoutDestroy(layout)
    final MethodHandle preferenceCreate;  // cublasLtMatmulPreferenceCreate(preference*)
    final MethodHandle preferenceDestroy; // cublasLtMatmulPreferenceDestroy(preference)
    // cublasLtMatmulPreferenceSetAttribute(preference, attr, const void*, size_t)
    final MethodHandle preferenceSetAttribute;
    // cublasLtMatmulAlgoGetHeuristic(handle, desc, A, B, C, D, preference, int requested, results*, int* returned)
    final MethodHandle heuristic;
    // cublasLtMatmul(handle, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo, workspace,
    //     size_t workspace bytes, stream)
    final MethodHandle matmul;

    private CublasLtLibrary(SymbolLookup symbols) {
        Linker linker = Linker.nativeLinker();
        create = bind(linker, symbols, "cublasLtCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        destroy = bind(linker, symbols, "cublasLtDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        descCreate = bind(linker, symbols, "cublasLtMatmulDescCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        descDestroy = bind(linker, symbols, "cublasLtMatmulDescDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        descSetAttribute = bind(linker, symbols, "cublasLtMatmulDescSetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
        layoutCreate = bind(linker, symbols, "cublasLtMatrixLayoutCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
        layoutDestroy = bind(linker, symbols, "cublasLtMatrixLayoutDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        preferenceCreate = bind(linker, symbols, "cublasLtMatmulPreferenceCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
        preferenceDestroy = bind(linker, symbols, "cublasLtMatmulPreferenceDestroy",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
        preferenceSetAttribute = bind(linker, symbols, "cublasLtMatmulPreferenceSetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
        heuristic = bind(linker, symbols, "cublasLtMatmulAlgoGetHeuristic", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
        matmul = bind(linker, symbols, "cublasLtMatmul", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS,             // handle, desc, alpha
                ADDRESS, ADDRESS, ADDRESS, ADDRESS,    // A, Adesc, B, Bdesc
                ADDRESS,                               // beta
                ADDRESS, ADDRESS, ADDRESS, ADDRESS,    // C, Cdesc, D, Ddesc
                ADDRESS, ADDRESS, JAVA_LONG, ADDRESS)); // algo, workspace, its bytes, stream
    }

    /** The binding, or null where libcublasLt lacks one of the functions. */
    static CublasLtLibrary bind(SymbolLookup symbols) {
        try {
            return new CublasLtLibrary(symbols);
        } catch (IllegalStateException e) {
            return null;
        }
    }

    private static MethodHandle bind(Linker linker, SymbolLookup symbols, String name, FunctionDescriptor descriptor) {
        Optional<MemorySegment> symbol = symbols.find(name);
        if (symbol.isEmpty()) {
            throw new IllegalStateException("libcublasLt has no function " + name);
        }
        return linker.downcallHandle(symbol.get(), descriptor);
    }
}
