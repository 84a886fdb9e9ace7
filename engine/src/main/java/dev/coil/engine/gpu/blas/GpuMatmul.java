package dev.coil.engine.gpu.blas;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.kernels.ConvertKernel;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.load.DType;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The linear layer of {@code Ops.matmul} on the device: out[t, n] = Σ_k x[t, k] · w[n, k], x and
 * out f32 row-major, w in its storage dtype. 16-bit weights multiply x rounded to the same type
 * (cuBLAS multiplies operands of one type) with f32 accumulation; f32 weights multiply f32 x.
 *
 * <p>Row-major out (tokens, rows) is column-major outᵀ (rows, tokens) = w · xᵀ, and row-major w
 * (rows, cols) is column-major wᵀ: so cuBLAS computes C = op(A)·B with A = w transposed
 * (lda = cols), B = x (ldb = cols), m = rows, n = tokens, k = cols, ldc = rows.
 *
 * <p>A product of at most {@link GemvKernel#MAX_PLAIN_ROWS} rows over bf16 weights (a decode step)
 * runs in {@link GemvKernel} instead, which reads the weights at full bandwidth and the f32 x as it is.
 *
 * <p>It keeps one scratch buffer for the converted x, grown on demand: not for use from two
 * streams at once, and a product inside a CUDA graph capture must not need it to grow.
 */
public final class GpuMatmul implements AutoCloseable {

    private final CudaDevice device;
    private final Cublas cublas;
    private final ConvertKernel convert;
    private final GemvKernel gemv;
    private DeviceBuffer scratch;
    private long allocations;

    public GpuMatmul(CudaDevice device, Cublas cublas) {
        this.device = device;
        this.cublas = cublas;
        this.convert = new ConvertKernel(device.kernels());
        this.gemv = new GemvKernel(device.kernels());
    }

    /** The few-rows product, for callers that fuse an operand into it. */
    public GemvKernel gemv() {
        return gemv;
    }

    /** out = x · wᵀ; x: (tokens, w.cols) f32, out: (tokens, w.rows) f32 (overwritten). */
    public void matmul(CudaStream stream, DeviceBuffer x, int tokens, DeviceMatrix w, DeviceBuffer out) {
        if (tokens < 0) {
            throw new IllegalArgumentException("tokens must not be negative, not " + tokens);
        }
        long inputs = (long) tokens * w.cols();
        x.requireFloats(inputs, "x");
        out.requireFloats((long) tokens * w.rows(), "out");
        if (tokens == 0) {
            return;
        }
        if (gemv.supportsPlain(tokens, w)) {
            gemv.project(stream, x, DType.F32, w.cols(), tokens, List.of(new GemvKernel.Product(w, out)));
            return;
        }
        DeviceBuffer operand = x;
        if (w.dtype() != DType.F32) {
            operand = scratch(2 * inputs);
            convert.launch(stream, x, inputs, w.dtype(), operand);
        }
        cublas.gemmEx(stream, true, false, w.rows(), tokens, w.cols(), w.data(), w.cols(), operand, w.cols(),
                w.dtype(), out, w.rows(), false);
    }

    /**
     * out = x · wᵀ with x already in w's 16-bit type (written so by the kernel that produced it):
     * x16: (tokens, w.cols) in w.dtype(), out: (tokens, w.rows) f32.
     */
    public void matmulPrepared(CudaStream stream, DeviceBuffer x16, int tokens, DeviceMatrix w, DeviceBuffer out) {
        if (w.dtype() == DType.F32) {
            throw new IllegalArgumentException("a prepared 16-bit operand needs 16-bit weights, not F32");
        }
        x16.requireBytes(2L * tokens * w.cols(), "x16");
        out.requireFloats((long) tokens * w.rows(), "out");
        if (tokens > 0 && gemv.supportsPlain(tokens, w)) {
            gemv.project(stream, x16, w.dtype(), w.cols(), tokens, List.of(new GemvKernel.Product(w, out)));
        } else if (tokens > 0) {
            cublas.gemmEx(stream, true, false, w.rows(), tokens, w.cols(), w.data(), w.cols(), x16, w.cols(),
                    w.dtype(), out, w.rows(), false);
        }
    }

    /**
     * Runs one product on zeros for each distinct shape of {@code weights} and each cuBLASLt token
     * bucket of more than {@link GemvKernel#MAX_PLAIN_ROWS} rows up to maxTokens's bucket, so that the
     * products of a serving step reuse the algorithms found here ({@link Cublas}). Returns the products
     * run (none where cuBLASLt is not in use). Waits for them; the scratch they used is freed.
     */
    public int prepare(CudaStream stream, List<DeviceMatrix> weights, int maxTokens) {
        if (!cublas.usesLt() || maxTokens <= GemvKernel.MAX_PLAIN_ROWS) {
            return 0;
        }
        Map<List<Object>, DeviceMatrix> shapes = new LinkedHashMap<>();
        int widest = 0;
        int tallest = 0;
        for (DeviceMatrix w : weights) {
            shapes.putIfAbsent(List.of(w.rows(), w.cols(), w.dtype()), w);
            widest = Math.max(widest, w.cols());
            tallest = Math.max(tallest, w.rows());
        }
        int largest = CublasLt.bucket(maxTokens);
        int products = 0;
        try (DeviceBuffer x = device.allocate(4L * largest * widest);
                DeviceBuffer out = device.allocate(4L * largest * tallest)) {
            x.fill(0);
            for (DeviceMatrix w : shapes.values()) {
                // Every bucket from the first above the few-rows kernels' up to largest (itself a bucket).
                for (int n = CublasLt.bucket(GemvKernel.MAX_PLAIN_ROWS + 1); n <= largest; n = CublasLt.bucket(n + 1)) {
                    cublas.gemmEx(stream, true, false, w.rows(), n, w.cols(), w.data(), w.cols(), x, w.cols(),
                            w.dtype(), out, w.rows(), false);
                    products++;
                }
            }
            stream.synchronize();
        }
        return products;
    }

    private DeviceBuffer scratch(long bytes) {
        if (scratch == null || scratch.bytes() < bytes) {
            if (scratch != null) {
                // The old buffer may still be read by queued work: wait before freeing it.
                device.synchronize();
                scratch.close();
            }
            scratch = device.allocate(Math.max(bytes, 1L << 20));
            allocations++;
        }
        return scratch.slice(0, bytes);
    }

    /** How many operand buffers were allocated so far: a captured graph is valid while this stays unchanged. */
    public long allocations() {
        return allocations;
    }

    @Override
    public void close() {
        if (scratch != null) {
            scratch.close();
        }
    }
}
