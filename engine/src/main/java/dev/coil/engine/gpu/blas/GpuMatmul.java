package dev.coil.engine.gpu.blas;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.kernels.ConvertKernel;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.gpu.kernels.InvariantGemmKernel;
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
 * <p>Made batch-invariant ({@code --batch-invariant}), every product goes to {@link InvariantGemmKernel}
 * instead, whose rows do not depend on each other's presence; cuBLAS and the few-rows kernels are
 * not used.
 *
 * <p>It keeps one scratch buffer for the converted x, grown on demand: not for use from two
 * streams at once, and a product inside a CUDA graph capture must not need it to grow.
 */
public final class GpuMatmul implements AutoCloseable {

    private final CudaDevice device;
    private final Cublas cublas;
    private final ConvertKernel convert;
    private final GemvKernel gemv;
    /** Every product's kernel when batch-invariant, else null. */
    private final InvariantGemmKernel invariant;
    private DeviceBuffer scratch;
    private long allocations;

    public GpuMatmul(CudaDevice device, Cublas cublas) {
        this(device, cublas, false);
    }

    /** As above; {@code batchInvariant}: every product through {@link InvariantGemmKernel}. */
    public GpuMatmul(CudaDevice device, Cublas cublas, boolean batchInvariant) {
        this.device = device;
        this.cublas = cublas;
        this.convert = new ConvertKernel(device.kernels());
        this.gemv = new GemvKernel(device.kernels(), !batchInvariant);
        this.invariant = batchInvariant ? new InvariantGemmKernel(device.kernels()) : null;
    }

    /** The few-rows product, for callers that fuse an operand into it. */
    public GemvKernel gemv() {
        return gemv;
    }

    /** The batch-invariant product every product goes to in that mode, else null. */
    public InvariantGemmKernel invariant() {
        return invariant;
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
        if (invariant != null) {
            if (invariant.pipelinesRounded(tokens, w)) {
                // A prompt step's product: x rounded here, as the kernels would round it, feeds the
                // pipelined tiles.
                DeviceBuffer operand = scratch(2 * inputs);
                convert.launch(stream, x, inputs, w.dtype(), operand);
                invariant.project(stream, operand, w.dtype(), tokens, w, out);
            } else {
                invariant.project(stream, x, DType.F32, tokens, w, out);
            }
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
        if (invariant != null) {
            invariant.project(stream, x16, w.dtype(), tokens, w, out);
        } else if (tokens > 0 && gemv.supportsPlain(tokens, w)) {
            gemv.project(stream, x16, w.dtype(), w.cols(), tokens, List.of(new GemvKernel.Product(w, out)));
        } else if (tokens > 0) {
            cublas.gemmEx(stream, true, false, w.rows(), tokens, w.cols(), w.data(), w.cols(), x16, w.cols(),
                    w.dtype(), out, w.rows(), false);
        }
    }

    /** Weights whose products a step makes with up to maxTokens rows (see {@link #prepare}). */
    public record Plan(List<DeviceMatrix> weights, int maxTokens) {}

    /**
     * Runs one product on zeros for each distinct weight shape of the plans and each cuBLASLt token
     * bucket of more than {@link GemvKernel#MAX_PLAIN_ROWS} rows up to its plan's maxTokens's bucket,
     * so that the products of a serving step reuse the algorithms found here ({@link Cublas}). Returns
     * the products run (none where cuBLASLt is not in use). Waits for them; the one scratch they used
     * is freed.
     */
    public int prepare(CudaStream stream, List<Plan> plans) {
        if (!cublas.usesLt() || invariant != null) {
            return 0;
        }
        // The largest bucket each distinct shape needs, and the scratch the largest product needs.
        Map<List<Object>, DeviceMatrix> shapes = new LinkedHashMap<>();
        Map<List<Object>, Integer> largest = new LinkedHashMap<>();
        long inputBytes = 0;
        long outputBytes = 0;
        for (Plan plan : plans) {
            if (plan.maxTokens() <= GemvKernel.MAX_PLAIN_ROWS) {
                continue;
            }
            int bucket = CublasLt.bucket(plan.maxTokens());
            for (DeviceMatrix w : plan.weights()) {
                List<Object> shape = List.of(w.rows(), w.cols(), w.dtype());
                shapes.putIfAbsent(shape, w);
                largest.merge(shape, bucket, Math::max);
                inputBytes = Math.max(inputBytes, 4L * bucket * w.cols());
                outputBytes = Math.max(outputBytes, 4L * bucket * w.rows());
            }
        }
        if (shapes.isEmpty()) {
            return 0;
        }
        int products = 0;
        try (DeviceBuffer x = device.allocate(inputBytes); DeviceBuffer out = device.allocate(outputBytes)) {
            x.fill(0);
            for (Map.Entry<List<Object>, DeviceMatrix> entry : shapes.entrySet()) {
                DeviceMatrix w = entry.getValue();
                int last = largest.get(entry.getKey());
                // Every bucket from the first above the few-rows kernels' up to last (itself a bucket).
                for (int n = CublasLt.bucket(GemvKernel.MAX_PLAIN_ROWS + 1); n <= last; n = CublasLt.bucket(n + 1)) {
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
