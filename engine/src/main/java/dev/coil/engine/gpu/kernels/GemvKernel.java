package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;
import java.util.List;

/**
 * Launches the {@code gemv_*} kernels (gemv.cu): the linear layer for at most {@link #MAX_ROWS}
 * rows over bf16 weights, out[r, n] = Σ_k x[r, k] · w[n, k] with f32 accumulation, reading the
 * weights once at full bandwidth. The operand x is f32 or bf16 rows, or is computed on the way in
 * from the kernel that would otherwise run before the product: silu(gate) · up, or Mamba-2's gated
 * RMSNorm. Up to three products over the same x (q, k, v) share a launch.
 *
 * <p>Launched with programmatic stream serialization where the device allows it: each launch
 * loads its weights while the kernel before it finishes, then waits for its operand.
 *
 * <p>{@code -Dcoil.cuda.gemv=false} (read when a launcher is made) sends every product to cuBLAS.
 */
public final class GemvKernel {

    public static final String PROPERTY = "coil.cuda.gemv";

    /** The most rows one launch takes: the decode batches of 1, 2, 4 and 8. */
    public static final int MAX_ROWS = 8;

    /** Dynamic shared memory a launch may use: x as f32 (rows × cols) plus the gated norm's group sums. */
    static final int MAX_SHARED_BYTES = 96 * 1024;

    private static final int THREADS = 256;
    private static final int COLUMNS_PER_BLOCK = 8;

    /** How x is made from the launch's inputs a and b. */
    public enum Operand {
        /** x = a, f32. */
        F32("f32"),
        /** x = a, bf16. */
        BF16("bf16"),
        /** x = silu(a) · b, f32 (the MLP's gate and up). */
        SILU_PRODUCT("silu"),
        /** x = weight · (a · silu(b)) / rms over each group (Mamba-2's gated norm, a = y, b = z), f32. */
        GATED_NORM("gated_norm");

        private final String suffix;

        Operand(String suffix) {
            this.suffix = suffix;
        }
    }

    /** One product of a launch: out (rows, weights.rows()) f32 = x · weightsᵀ. */
    public record Product(DeviceMatrix weights, DeviceBuffer out) {
    }

    /** Mamba-2's gated norm as an operand: its weight (cols), group size and epsilon. */
    public record Norm(DeviceBuffer weight, int groupSize, float eps) {
    }

    private final Kernel[][] kernels = new Kernel[Operand.values().length][4];
    private final boolean enabled;

    public GemvKernel(KernelModule module) {
        this.enabled = !"false".equalsIgnoreCase(System.getProperty(PROPERTY, "true"));
        for (Operand operand : Operand.values()) {
            for (int bucket = 0; bucket < 4; bucket++) {
                Kernel kernel = module.kernel("gemv_" + operand.suffix + "_rows" + (1 << bucket));
                kernel.allowDynamicSharedBytes(MAX_SHARED_BYTES);
                kernels[operand.ordinal()][bucket] = kernel;
            }
        }
    }

    /**
     * True when this launcher takes {@code rows} rows times w: bf16 weights with a multiple of 8
     * columns, 1 to {@link #MAX_ROWS} rows whose operand fits in shared memory, and not switched off.
     * A gated-norm operand also needs groups of a multiple of 32 channels ({@link #supports(int, DeviceMatrix, Norm)}).
     */
    public boolean supports(int rows, DeviceMatrix w) {
        return enabled && rows >= 1 && rows <= MAX_ROWS && w.dtype() == DType.BF16 && w.cols() % 8 == 0
                && sharedBytes(rows, w.cols(), 0) <= MAX_SHARED_BYTES;
    }

    /** As {@link #supports(int, DeviceMatrix)}, with x made by the gated norm {@code norm}. */
    public boolean supports(int rows, DeviceMatrix w, Norm norm) {
        return supports(rows, w) && norm.groupSize() % 32 == 0 && w.cols() % norm.groupSize() == 0
                && sharedBytes(rows, w.cols(), w.cols() / norm.groupSize()) <= MAX_SHARED_BYTES;
    }

    /** out = x · wᵀ for each product; x: (rows, cols) in {@code type} (F32 or BF16), rows {@code stride} elements apart. */
    public void project(CudaStream stream, DeviceBuffer x, DType type, int stride, int rows, List<Product> products) {
        Operand operand = switch (type) {
            case F32 -> Operand.F32;
            case BF16 -> Operand.BF16;
            case F16 -> throw new IllegalArgumentException("a gemv operand is F32 or BF16, not F16");
        };
        int cols = products.getFirst().weights().cols();
        long spanned = RowKernels.spanned(rows, cols, stride);
        if (type == DType.F32) {
            x.requireFloats(spanned, "x");
        } else {
            x.requireBytes(2 * spanned, "x");
        }
        launch(stream, operand, x, stride, null, 0, null, rows, products);
    }

    /** out = (silu(gate) · up) · wᵀ; gate and up: (rows, w.cols) f32 rows of their strides. */
    public void projectSiluProduct(CudaStream stream, DeviceBuffer gate, int gateStride, DeviceBuffer up,
            int upStride, int rows, Product product) {
        int cols = product.weights().cols();
        gate.requireFloats(RowKernels.spanned(rows, cols, gateStride), "gate");
        up.requireFloats(RowKernels.spanned(rows, cols, upStride), "up");
        launch(stream, Operand.SILU_PRODUCT, gate, gateStride, up, upStride, null, rows, List.of(product));
    }

    /** out = gatedRmsNorm(y, z) · wᵀ; y and z: (rows, w.cols) f32 rows of their strides. */
    public void projectGatedNorm(CudaStream stream, DeviceBuffer y, int yStride, DeviceBuffer z, int zStride,
            Norm norm, int rows, Product product) {
        int cols = product.weights().cols();
        y.requireFloats(RowKernels.spanned(rows, cols, yStride), "y");
        z.requireFloats(RowKernels.spanned(rows, cols, zStride), "z");
        norm.weight().requireFloats(cols, "norm weight");
        launch(stream, Operand.GATED_NORM, y, yStride, z, zStride, norm, rows, List.of(product));
    }

    private void launch(CudaStream stream, Operand operand, DeviceBuffer a, int aStride, DeviceBuffer b,
            int bStride, Norm norm, int rows, List<Product> products) {
        if (products.isEmpty() || products.size() > 3) {
            throw new IllegalArgumentException("a gemv launch takes 1 to 3 products, not " + products.size());
        }
        int cols = products.getFirst().weights().cols();
        boolean fits = norm == null ? supports(rows, products.getFirst().weights())
                : supports(rows, products.getFirst().weights(), norm);
        if (!fits) {
            throw new IllegalArgumentException("gemv does not take " + rows + " rows × " + products.getFirst().weights()
                    .dtype() + " [" + products.getFirst().weights().rows() + ", " + cols + "]"
                    + (enabled ? "" : " (switched off by -D" + PROPERTY + "=false)"));
        }
        RowKernels.requireStride(aStride, cols, "x stride");
        Object[] segments = new Object[9];
        long columns = 0;
        for (int s = 0; s < 3; s++) {
            Product product = s < products.size() ? products.get(s) : null;
            if (product != null) {
                if (product.weights().cols() != cols || product.weights().dtype() != DType.BF16) {
                    throw new IllegalArgumentException("the products of one gemv launch share bf16 weights of " + cols
                            + " columns");
                }
                product.out().requireFloats((long) rows * product.weights().rows(), "out");
                columns += product.weights().rows();
            }
            segments[3 * s] = product == null ? null : product.weights().data();
            segments[3 * s + 1] = product == null ? null : product.out();
            segments[3 * s + 2] = product == null ? 0 : product.weights().rows();
        }
        int groups = norm == null ? 0 : cols / norm.groupSize();
        int bucket = rows <= 1 ? 0 : rows <= 2 ? 1 : rows <= 4 ? 2 : 3;
        int blocks = (int) Math.ceilDiv(columns, COLUMNS_PER_BLOCK);
        Object[] arguments = new Object[9 + segments.length];
        arguments[0] = a;
        arguments[1] = aStride;
        arguments[2] = b;
        arguments[3] = bStride;
        arguments[4] = norm == null ? null : norm.weight();
        arguments[5] = norm == null ? 32 : norm.groupSize();
        arguments[6] = norm == null ? 0f : norm.eps();
        arguments[7] = rows;
        arguments[8] = cols;
        System.arraycopy(segments, 0, arguments, 9, segments.length);
        kernels[operand.ordinal()][bucket].launchProgrammatic(stream, blocks, THREADS, sharedBytes(rows, cols, groups),
                arguments);
    }

    private static int sharedBytes(int rows, int cols, int groups) {
        return (int) Math.min(Integer.MAX_VALUE, 4L * rows * ((long) cols + groups));
    }
}
