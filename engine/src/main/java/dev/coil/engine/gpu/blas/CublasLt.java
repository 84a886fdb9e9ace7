package dev.coil.engine.gpu.blas;

import dev.coil.engine.gpu.CudaException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Products through cuBLASLt with cuBLAS's kernel choice kept. cublasGemmEx searches its heuristics
 * for every product shape it has not met before: on an H100 machine about 0.3 ms of host time a
 * product, against 10-15 µs for a shape it has met, and a serving step's token count is new more
 * often than not (prompt chunks beside a changing number of decode rows). A prompt step of the 300M
 * shape makes about 120 products, so a new token count held its queueing for 35-40 ms.
 *
 * <p>Here the search runs once per weight shape and token bucket: n rounded up to a multiple of 16
 * up to 64, then to the next of 96, 128, 192, 256, 384, ... (each 4/3 or 3/2 of the one before).
 * The algorithm found for the bucket's largest n serves the bucket's other counts: a cuBLASLt
 * algorithm (tile shape, split, stages) is mostly valid for fewer columns than it was chosen for,
 * and its workspace need does not grow as n shrinks. cublasLtMatmul checks the algorithm against
 * the actual product and refuses it (CUBLAS_STATUS_NOT_SUPPORTED, nothing queued) where it is not
 * valid, as for a single column: that count then gets a search of its own, and where cuBLASLt has
 * nothing for it, the product goes to cublasGemmEx. Layouts are made once per exact shape and
 * kept (a few per token count a step can have). Not for use from two threads at once (callers
 * hold one handle per stream, as {@link Cublas}).
 */
final class CublasLt implements AutoCloseable {

    /**
     * One algorithm a (weight shape, bucket, workspace): what a product of that kind replays. exact:
     * the key of one token count (bucket = n) whose bucket's algorithm cuBLASLt refused.
     */
    private record AlgoKey(boolean transposeA, boolean transposeB, int m, int bucket, int k, int lda, int ldb, int ldc,
            int type, boolean accumulate, long workspaceBytes, boolean exact) {

        AlgoKey exactFor(int n) {
            return new AlgoKey(transposeA, transposeB, m, n, k, lda, ldb, ldc, type, accumulate, workspaceBytes, true);
        }
    }

    /** cublasStatus_t CUBLAS_STATUS_NOT_SUPPORTED: the algorithm does not fit the product. */
    private static final int NOT_SUPPORTED = 15;

    private record LayoutKey(int type, long rows, long cols, long ld) {}

    private final CublasLtLibrary lt;
    private final CublasLibrary library;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle;
    /** Matmul descriptors by (transposeA, transposeB): f32 compute and scale. */
    private final MemorySegment[] descriptors = new MemorySegment[4];
    private final Map<Long, MemorySegment> preferences = new HashMap<>();
    private final Map<LayoutKey, MemorySegment> layouts = new HashMap<>();
    /** Found algorithms; MemorySegment.NULL where cuBLASLt offered none (those products take gemmEx). */
    private final Map<AlgoKey, MemorySegment> algorithms = new HashMap<>();
    private final MemorySegment slot;
    private final MemorySegment results;
    private final MemorySegment returned;
    private final MemorySegment attribute;
    private long searches;
    private boolean closed;

    private CublasLt(CublasLtLibrary lt, CublasLibrary library, MemorySegment handle) {
        this.lt = lt;
        this.library = library;
        this.handle = handle;
        this.slot = arena.allocate(ValueLayout.ADDRESS);
        this.results = arena.allocate(CublasLtLibrary.HEURISTIC_RESULT_BYTES, 8);
        this.returned = arena.allocate(ValueLayout.JAVA_INT);
        this.attribute = arena.allocate(ValueLayout.JAVA_LONG);
    }

    /** A cuBLASLt handle, or null where the library has no cuBLASLt binding. */
    static CublasLt create(CublasLibrary library) {
        if (library.lt == null) {
            return null;
        }
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(ValueLayout.ADDRESS);
            int status = (int) library.lt.create.invokeExact(out);
            library.check(status, "cublasLtCreate");
            return new CublasLt(library.lt, library, out.get(ValueLayout.ADDRESS, 0));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable e) {
            throw new CudaException("cublasLtCreate could not be called: " + e, e);
        }
    }

    /**
     * The bucket of n columns whose algorithm a product of n takes: a multiple of 16 up to 64, then
     * the least of 96, 128, 192, 256, 384, 512, ... (2^j and 1.5 · 2^j) that is at least n.
     */
    static int bucket(int n) {
        if (n <= 0) {
            throw new IllegalArgumentException("n must be positive, not " + n);
        }
        if (n <= 64) {
            return (n + 15) / 16 * 16;
        }
        long power = 64;
        while (true) {
            if (n <= power + power / 2) {
                return (int) (power + power / 2);
            }
            if (n <= 2 * power) {
                return (int) (2 * power);
            }
            power *= 2;
            if (power > Integer.MAX_VALUE / 2) {
                return n;
            }
        }
    }

    /** Algorithm searches so far (one per weight shape, bucket and workspace). */
    long searches() {
        return searches;
    }

    /**
     * Column-major D = C = op(A) · op(B) (+ C with beta 1) with the bucket's algorithm, queued on
     * stream; false (nothing queued) where cuBLASLt has no algorithm for it. alpha and beta: host
     * floats; workspace: a device address and its bytes (0 and 0 for none).
     */
    boolean matmul(long stream, boolean transposeA, boolean transposeB, int m, int n, int k, long a, int lda, long b,
            int ldb, int type, long c, int ldc, MemorySegment alpha, MemorySegment beta, boolean accumulate,
            long workspace, long workspaceBytes) {
        AlgoKey key = new AlgoKey(transposeA, transposeB, m, bucket(n), k, lda, ldb, ldc, type, accumulate,
                workspaceBytes, false);
        MemorySegment descriptor = descriptor(transposeA, transposeB);
        MemorySegment aLayout = layout(type, transposeA ? k : m, transposeA ? m : k, lda);
        MemorySegment bLayout = layout(type, transposeB ? n : k, transposeB ? k : n, ldb);
        MemorySegment cLayout = layout(Cublas.CUDA_R_32F, m, n, ldc);
        MemorySegment bucketAlgorithm = algorithms.computeIfAbsent(key, this::search);
        if (bucketAlgorithm.equals(MemorySegment.NULL)) {
            return false;
        }
        Operands operands = new Operands(m, n, k, stream, descriptor, alpha, beta, a, aLayout, b, bLayout, c,
                cLayout, workspace, workspaceBytes);
        if (launch(bucketAlgorithm, operands)) {
            return true;
        }
        if (n == key.bucket()) {
            return false; // the bucket's own count was refused: nothing else to try
        }
        MemorySegment exactAlgorithm = algorithms.computeIfAbsent(key.exactFor(n), this::search);
        return !exactAlgorithm.equals(MemorySegment.NULL) && launch(exactAlgorithm, operands);
    }

    /** One product's arguments to cublasLtMatmul, but for the algorithm; c is both C and D. */
    private record Operands(int m, int n, int k, long stream, MemorySegment descriptor, MemorySegment alpha,
            MemorySegment beta, long a, MemorySegment aLayout, long b, MemorySegment bLayout, long c,
            MemorySegment cLayout, long workspace, long workspaceBytes) {}

    /**
     * Queues the product with algorithm: true when queued, false when cuBLASLt refused the algorithm
     * for it (CUBLAS_STATUS_NOT_SUPPORTED, nothing queued); any other failure throws.
     */
    private boolean launch(MemorySegment algorithm, Operands p) {
        int status;
        try {
            status = (int) lt.matmul.invokeExact(handle, p.descriptor(), p.alpha(), MemorySegment.ofAddress(p.a()),
                    p.aLayout(), MemorySegment.ofAddress(p.b()), p.bLayout(), p.beta(), MemorySegment.ofAddress(p.c()),
                    p.cLayout(), MemorySegment.ofAddress(p.c()), p.cLayout(), algorithm,
                    MemorySegment.ofAddress(p.workspace()), p.workspaceBytes(), MemorySegment.ofAddress(p.stream()));
        } catch (Throwable e) {
            throw new CudaException("cublasLtMatmul could not be called: " + e, e);
        }
        if (status != 0 && status != NOT_SUPPORTED) {
            library.check(status, "cublasLtMatmul(m " + p.m() + ", n " + p.n() + ", k " + p.k() + ")");
        }
        return status == 0;
    }

    /** cuBLASLt's first choice for the bucket's largest n, copied out, or NULL when it offers none. */
    private MemorySegment search(AlgoKey key) {
        searches++;
        MemorySegment descriptor = descriptor(key.transposeA(), key.transposeB());
        int n = key.bucket();
        MemorySegment aLayout = layout(key.type(), key.transposeA() ? key.k() : key.m(),
                key.transposeA() ? key.m() : key.k(), key.lda());
        MemorySegment bLayout = layout(key.type(), key.transposeB() ? n : key.k(), key.transposeB() ? key.k() : n,
                key.ldb());
        MemorySegment cLayout = layout(Cublas.CUDA_R_32F, key.m(), n, key.ldc());
        try {
            int status = (int) lt.heuristic.invokeExact(handle, descriptor, aLayout, bLayout, cLayout, cLayout,
                    preference(key.workspaceBytes()), 1, results, returned);
            if (status != 0 || returned.get(ValueLayout.JAVA_INT, 0) < 1
                    || results.get(ValueLayout.JAVA_INT, CublasLtLibrary.RESULT_STATE_AT) != 0
                    || results.get(ValueLayout.JAVA_LONG, CublasLtLibrary.RESULT_WORKSPACE_AT) > key.workspaceBytes()) {
                return MemorySegment.NULL;
            }
        } catch (Throwable e) {
            throw new CudaException("cublasLtMatmulAlgoGetHeuristic could not be called: " + e, e);
        }
        MemorySegment algorithm = arena.allocate(CublasLtLibrary.ALGO_BYTES, 8);
        MemorySegment.copy(results, 0, algorithm, 0, CublasLtLibrary.ALGO_BYTES);
        return algorithm;
    }

    private MemorySegment descriptor(boolean transposeA, boolean transposeB) {
        int index = (transposeA ? 2 : 0) + (transposeB ? 1 : 0);
        if (descriptors[index] == null) {
            try {
                int status = (int) lt.descCreate.invokeExact(slot, Cublas.COMPUTE_32F, Cublas.CUDA_R_32F);
                library.check(status, "cublasLtMatmulDescCreate");
                MemorySegment descriptor = slot.get(ValueLayout.ADDRESS, 0);
                descriptors[index] = descriptor;
                setDescriptor(descriptor, CublasLtLibrary.DESC_TRANSA, transposeA ? Cublas.OP_T : Cublas.OP_N);
                setDescriptor(descriptor, CublasLtLibrary.DESC_TRANSB, transposeB ? Cublas.OP_T : Cublas.OP_N);
            } catch (CudaException e) {
                throw e;
            } catch (Throwable e) {
                throw new CudaException("cublasLtMatmulDescCreate could not be called: " + e, e);
            }
        }
        return descriptors[index];
    }

    private void setDescriptor(MemorySegment descriptor, int name, int value) throws Throwable {
        attribute.set(ValueLayout.JAVA_INT, 0, value);
        int status = (int) lt.descSetAttribute.invokeExact(descriptor, name, attribute, 4L);
        library.check(status, "cublasLtMatmulDescSetAttribute(" + name + ")");
    }

    private MemorySegment preference(long workspaceBytes) throws Throwable {
        MemorySegment preference = preferences.get(workspaceBytes);
        if (preference == null) {
            int status = (int) lt.preferenceCreate.invokeExact(slot);
            library.check(status, "cublasLtMatmulPreferenceCreate");
            preference = slot.get(ValueLayout.ADDRESS, 0);
            preferences.put(workspaceBytes, preference);
            attribute.set(ValueLayout.JAVA_LONG, 0, workspaceBytes);
            status = (int) lt.preferenceSetAttribute.invokeExact(preference,
                    CublasLtLibrary.PREFERENCE_MAX_WORKSPACE_BYTES, attribute, 8L);
            library.check(status, "cublasLtMatmulPreferenceSetAttribute(max workspace)");
        }
        return preference;
    }

    private MemorySegment layout(int type, long rows, long cols, long ld) {
        LayoutKey key = new LayoutKey(type, rows, cols, ld);
        MemorySegment layout = layouts.get(key);
        if (layout == null) {
            try {
                int status = (int) lt.layoutCreate.invokeExact(slot, type, rows, cols, ld);
                library.check(status, "cublasLtMatrixLayoutCreate(" + rows + " x " + cols + ", ld " + ld + ")");
            } catch (CudaException e) {
                throw e;
            } catch (Throwable e) {
                throw new CudaException("cublasLtMatrixLayoutCreate could not be called: " + e, e);
            }
            layout = slot.get(ValueLayout.ADDRESS, 0);
            layouts.put(key, layout);
        }
        return layout;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        List<String> failures = new ArrayList<>();
        try {
            for (MemorySegment layout : layouts.values()) {
                if ((int) lt.layoutDestroy.invokeExact(layout) != 0) {
                    failures.add("cublasLtMatrixLayoutDestroy");
                }
            }
            for (MemorySegment preference : preferences.values()) {
                if ((int) lt.preferenceDestroy.invokeExact(preference) != 0) {
                    failures.add("cublasLtMatmulPreferenceDestroy");
                }
            }
            for (MemorySegment descriptor : descriptors) {
                if (descriptor != null && (int) lt.descDestroy.invokeExact(descriptor) != 0) {
                    failures.add("cublasLtMatmulDescDestroy");
                }
            }
            if ((int) lt.destroy.invokeExact(handle) != 0) {
                failures.add("cublasLtDestroy");
            }
        } catch (Throwable e) {
            throw new CudaException("cuBLASLt's objects could not be released: " + e, e);
        } finally {
            arena.close();
        }
        if (!failures.isEmpty()) {
            throw new CudaException("cuBLASLt release failed: " + failures, 0, null);
        }
    }
}
