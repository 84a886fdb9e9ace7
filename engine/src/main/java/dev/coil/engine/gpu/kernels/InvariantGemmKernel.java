package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/**
 * Launches the {@code gemm_invariant_*} kernels (gemm_invariant_decode.cu, gemm_invariant_prompt.cu),
 * the linear layer of {@code --batch-invariant}: out[t, n] = Σ_k x[t, k] · w[n, k] with each output
 * summed in an order fixed by k alone, so that a row's outputs are the same bits whatever rows share
 * its launch and wherever it sits among them. 16-bit weights multiply x rounded to their type on the tensor cores
 * (segments of 256 k, each summed 32 k at a time from zero, the segments added in order); f32
 * weights multiply f32 x one fmaf at a time in k order. Up to {@link #FEW_ROWS} rows (decode steps)
 * go to a kernel that spreads a product over (16 rows, segment, 8 outputs) warps (from {@link
 * #WIDE_ROWS} rows, (16 rows, segment, 32 outputs) warps that read x once for their 32); more rows with an
 * operand already in the weights' type and widths of whole 16-byte chunks (prompt steps) to 128 × 128
 * tiles fed by a ring of asynchronous copies; the rest to 64 × 128 tiles staged through registers.
 * All keep the order. Launched with programmatic stream serialization where the device allows it:
 * the kernels ask for their first weights while the kernel before them finishes.
 */
public final class InvariantGemmKernel {

    /**
     * The most rows the segment-parallel kernel takes (gemm_invariant_rows16_*, 16 a row of blocks,
     * each reading the weights again, mostly from L2): decode steps.
     */
    public static final int FEW_ROWS = 128;
    /** k a segment (gemm_invariant.cuh's SEGMENT). */
    static final int SEGMENT = 256;
    /** The segment-parallel kernel's partial sums (MOST_SEGMENTS): wider products take the tiles. */
    static final int MOST_SEGMENTS = 96;
    /** The wide segment-parallel kernel's partial sums (MOST_WIDE_SEGMENTS): K up to 3072. */
    static final int MOST_WIDE_SEGMENTS = 12;
    /** Rows from which a decode step's products take the wide kernel (x read once for 32 outputs). */
    static final int WIDE_ROWS = 32;
    private static final int WIDE_OUTPUTS = 64;
    private static final int MOST_WARPS = 16;
    private static final int LEAST_WARPS = 4;
    private static final int TILE_ROWS = 64;
    private static final int TILE_OUTPUTS = 128;
    private static final int TILE_THREADS = 256;
    private static final int F32_TILE = 32;
    private static final int PIPELINE_ROWS = 128;
    private static final int PIPELINE_OUTPUTS = 128;
    private static final int PIPELINE_THREADS = 256;
    /** gemm_invariant_prompt.cu's PIPELINE_SHARED_BYTES: 4 stages of 128 + 128 rows of 32 16-bit values. */
    private static final int PIPELINE_SHARED_BYTES = 4 * (PIPELINE_ROWS + PIPELINE_OUTPUTS) * 32 * 2;

    /**
     * System property turning the pipelined kernel off ({@code -Dcoil.cuda.invariantPipelined=false}):
     * its products go to the 64 × 128 tiles instead, the same bits slower, for comparisons.
     */
    public static final String PIPELINED_PROPERTY = "coil.cuda.invariantPipelined";
    /**
     * System property turning off the few-rows kernel's ends ({@code -Dcoil.cuda.invariantEnds=false}):
     * a decode step's conv update and silu(gate) · up then run as launches of their own, the same
     * bits, for comparisons.
     */
    public static final String ENDS_PROPERTY = "coil.cuda.invariantEnds";

    /** Which kernel takes a product (each keeps the same order; tests run them side by side). */
    enum Path {
        /** gemm_invariant_rows16_*: up to {@link #FEW_ROWS} rows, K up to {@code MOST_SEGMENTS} segments. */
        FEW_ROWS,
        /** gemm_invariant_rows_wide_*: as FEW_ROWS, 64 outputs a block, K up to {@code MOST_WIDE_SEGMENTS} segments. */
        WIDE,
        /** gemm_invariant_pipelined_*: an operand in the weights' 16-bit type, 16-byte aligned rows. */
        PIPELINED,
        /** gemm_invariant_tiles_*: any product with 16-bit weights. */
        TILES
    }

    /** The kernels of one weight type and operand type: {few rows, wide, tiles, pipelined (16-bit operands only)}. */
    private record Kernels(Kernel fewRows, Kernel wide, Kernel tiles, Kernel pipelined) {}

    private final Kernels bf16FromF32;
    private final Kernels bf16FromBf16;
    private final Kernels f16FromF32;
    private final Kernels f16FromF16;
    private final Kernel f32;
    private final boolean pipelinedOn;
    private final boolean endsOn;

    public InvariantGemmKernel(KernelModule module) {
        this.pipelinedOn = !"false".equalsIgnoreCase(System.getProperty(PIPELINED_PROPERTY, "true"));
        this.endsOn = !"false".equalsIgnoreCase(System.getProperty(ENDS_PROPERTY, "true"));
        this.bf16FromF32 = kernels(module, "bf16_xf32", null);
        this.bf16FromBf16 = kernels(module, "bf16_xbf16", pipelined(module, "bf16"));
        this.f16FromF32 = kernels(module, "f16_xf32", null);
        this.f16FromF16 = kernels(module, "f16_xf16", pipelined(module, "f16"));
        this.f32 = module.kernel("gemm_invariant_f32").waitsForPreviousKernel();
    }

    private static Kernels kernels(KernelModule module, String suffix, Kernel pipelined) {
        return new Kernels(module.kernel("gemm_invariant_rows16_" + suffix).waitsForPreviousKernel(),
                module.kernel("gemm_invariant_rows_wide_" + suffix).waitsForPreviousKernel(),
                module.kernel("gemm_invariant_tiles_" + suffix).waitsForPreviousKernel(), pipelined);
    }

    private static Kernel pipelined(KernelModule module, String type) {
        Kernel kernel = module.kernel("gemm_invariant_pipelined_" + type).waitsForPreviousKernel();
        kernel.allowDynamicSharedBytes(PIPELINE_SHARED_BYTES);
        return kernel;
    }

    /**
     * out = x · wᵀ; x: (rows, w.cols()) in {@code xType} (F32, or w's own 16-bit type), out: (rows,
     * w.rows()) f32, overwritten.
     */
    public void project(CudaStream stream, DeviceBuffer x, DType xType, int rows, DeviceMatrix w, DeviceBuffer out) {
        project(stream, x, xType, rows, w, out, path(x, xType, rows, w));
    }

    /**
     * True when {@link #project} would take rows of f32 x times w faster with x first rounded to w's
     * 16-bit type (the same rounding the kernels make of f32 x, so the same bits): a prompt step's
     * product whose widths suit the pipelined kernel.
     */
    public boolean pipelinesRounded(int rows, DeviceMatrix w) {
        return pipelinedOn && rows > FEW_ROWS && pipelinesWeights(w);
    }

    /** The kernel {@link #project} picks: the fewest rows first, then the pipelined tiles where they apply. */
    Path path(DeviceBuffer x, DType xType, int rows, DeviceMatrix w) {
        if (wide(rows, w)) {
            return Path.WIDE;
        }
        if (fitsFewRows(rows, w.cols())) {
            return Path.FEW_ROWS;
        }
        return pipelinedOn && pipelines(x, xType, w) ? Path.PIPELINED : Path.TILES;
    }

    /** True when the pipelined kernel takes x times w: x in w's 16-bit type, both 16-byte aligned rows. */
    private static boolean pipelines(DeviceBuffer x, DType xType, DeviceMatrix w) {
        return xType == w.dtype() && pipelinesWeights(w) && x.address() % 16 == 0;
    }

    /** 16-bit weights whose rows are whole, aligned 16-byte chunks: what the pipelined kernel copies. */
    private static boolean pipelinesWeights(DeviceMatrix w) {
        return w.dtype() != DType.F32 && w.cols() % 8 == 0 && w.data().address() % 16 == 0;
    }

    /** rows × cols within the few-rows kernel's rows and partial sums. */
    private static boolean fitsFewRows(int rows, int cols) {
        return rows <= FEW_ROWS && Math.ceilDiv(cols, SEGMENT) <= MOST_SEGMENTS;
    }

    /** rows × cols within the wide kernel's rows and partial sums. */
    private static boolean fitsWide(int rows, int cols) {
        return rows <= FEW_ROWS && Math.ceilDiv(cols, SEGMENT) <= MOST_WIDE_SEGMENTS;
    }

    /** x: rows × w.cols() in xType, F32 or w's own type. */
    private static void requireOperand(DeviceBuffer x, DType xType, int rows, DeviceMatrix w) {
        RowKernels.requireNonNegative(rows, "rows");
        if (xType != DType.F32 && xType != w.dtype()) {
            throw new IllegalArgumentException("a " + xType + " operand for " + w.dtype() + " weights; F32 or "
                    + w.dtype());
        }
        x.requireBytes((long) rows * w.cols() * xType.bytes(), "x");
    }

    /** As above, through the kernel {@code path} names (f32 weights: always their own kernel). */
    void project(CudaStream stream, DeviceBuffer x, DType xType, int rows, DeviceMatrix w, DeviceBuffer out,
            Path path) {
        requireOperand(x, xType, rows, w);
        int cols = w.cols();
        int outputs = w.rows();
        out.requireFloats((long) rows * outputs, "out");
        int segments = Math.ceilDiv(cols, SEGMENT);
        if (path == Path.FEW_ROWS && !fitsFewRows(rows, cols)) {
            throw new IllegalArgumentException("the few-rows kernel takes at most " + FEW_ROWS + " rows and "
                    + MOST_SEGMENTS * SEGMENT + " columns, not " + rows + " × " + cols);
        }
        if (path == Path.WIDE && !fitsWide(rows, cols)) {
            throw new IllegalArgumentException("the wide kernel takes at most " + FEW_ROWS + " rows and "
                    + MOST_WIDE_SEGMENTS * SEGMENT + " columns, not " + rows + " × " + cols);
        }
        if (path == Path.PIPELINED && !pipelines(x, xType, w)) {
            throw new IllegalArgumentException("the pipelined kernel takes a 16-bit operand in the weights' type with"
                    + " 16-byte aligned rows, not " + xType + " × " + w.dtype() + " of " + cols + " columns");
        }
        if (rows == 0 || outputs == 0) {
            return;
        }
        if (w.dtype() == DType.F32) {
            f32.launch(stream, Math.ceilDiv(outputs, F32_TILE), requireGridY(Math.ceilDiv(rows, F32_TILE)), 1, 256,
                    0, x, rows, cols, w.data(), outputs, out);
            return;
        }
        Kernels kernels = kernels(w, xType);
        switch (path) {
            case FEW_ROWS -> launchFewRows(stream, kernels, x, rows, w, out, null, null, 0);
            case WIDE -> kernels.wide().launch(stream, Math.ceilDiv(outputs, WIDE_OUTPUTS), Math.ceilDiv(rows, 16), 1,
                    32 * Math.clamp(2 * segments, LEAST_WARPS, MOST_WARPS), 0, x, rows, cols, w.data(), outputs, out);
            case PIPELINED -> kernels.pipelined().launch(stream, Math.ceilDiv(outputs, PIPELINE_OUTPUTS),
                    requireGridY(Math.ceilDiv(rows, PIPELINE_ROWS)), 1, PIPELINE_THREADS, PIPELINE_SHARED_BYTES, x,
                    rows, cols, w.data(), outputs, out);
            case TILES -> kernels.tiles().launch(stream, Math.ceilDiv(outputs, TILE_OUTPUTS),
                    requireGridY(Math.ceilDiv(rows, TILE_ROWS)), 1, TILE_THREADS, 0, x, rows, cols, w.data(),
                    outputs, out);
        }
    }

    /**
     * True when {@link #projectWithConv} and {@link #projectSiluPair} take rows of x times w: the
     * few-rows kernel's rows and widths.
     */
    public boolean takesFewRows(int rows, DeviceMatrix w) {
        return w.dtype() != DType.F32 && fitsFewRows(rows, w.cols());
    }

    /**
     * True when a decode step's product of rows of x times w should end in its conv or silu · up here:
     * where the few-rows kernel, not the wide one, takes it.
     */
    public boolean endsProducts(int rows, DeviceMatrix w) {
        return endsOn && takesFewRows(rows, w) && !wide(rows, w);
    }

    /** True when the wide kernel takes rows of x times w (16-bit weights, K up to 3072). */
    private static boolean wide(int rows, DeviceMatrix w) {
        return rows >= WIDE_ROWS && w.dtype() != DType.F32 && fitsWide(rows, w.cols());
    }

    /**
     * A decode step's in_proj ending in Mamba-2's conv update of its xBC columns, in one launch:
     * out = x · wᵀ as {@link #project}, and conv.convolved and the conv states of conv.slots exactly as
     * {@link CausalConv1dUpdateKernel} makes them from out. Only where {@link #takesFewRows}.
     */
    public void projectWithConv(CudaStream stream, DeviceBuffer x, DType xType, int rows, DeviceMatrix w,
            DeviceBuffer out, GemvKernel.Conv conv) {
        requireFewRows(x, xType, rows, w);
        out.requireFloats((long) rows * w.rows(), "out");
        if (conv.firstColumn() < 0 || conv.firstColumn() + conv.channels() > w.rows() || conv.kernelSize() < 1) {
            throw new IllegalArgumentException("conv channels [" + conv.firstColumn() + ", +" + conv.channels()
                    + ") of kernel " + conv.kernelSize() + " outside a product of " + w.rows() + " outputs");
        }
        conv.convolved().requireFloats((long) rows * conv.channels(), "convolved");
        conv.slots().requireFloats(rows, "slots");
        conv.weight().requireFloats((long) conv.channels() * conv.kernelSize(), "conv weight");
        if (rows > 0) {
            launchFewRows(stream, kernels(w, xType), x, rows, w, out, conv, null, 0);
        }
    }

    /**
     * A decode step's stacked gate and up (w: [2 · width, hidden]) ending in hidden = bf16(silu(gate)
     * · up), (rows, width), exactly as {@link SiluMultiplyKernel} makes it from the f32 products, in one
     * launch. Only where {@link #takesFewRows}.
     */
    public void projectSiluPair(CudaStream stream, DeviceBuffer x, DType xType, int rows, DeviceMatrix w,
            DeviceBuffer hidden) {
        requireFewRows(x, xType, rows, w);
        if (w.rows() % 2 != 0) {
            throw new IllegalArgumentException("a stacked gate and up has an even number of rows, not " + w.rows());
        }
        int width = w.rows() / 2;
        hidden.requireBytes(2L * rows * width, "hidden");
        if (rows > 0) {
            launchFewRows(stream, kernels(w, xType), x, rows, w, null, null, hidden, width);
        }
    }

    private void requireFewRows(DeviceBuffer x, DType xType, int rows, DeviceMatrix w) {
        requireOperand(x, xType, rows, w);
        if (!takesFewRows(rows, w)) {
            throw new IllegalArgumentException("the few-rows kernel takes at most " + FEW_ROWS + " rows and "
                    + MOST_SEGMENTS * SEGMENT + " columns of 16-bit weights, not " + rows + " × " + w.cols() + " "
                    + w.dtype());
        }
    }

    private Kernels kernels(DeviceMatrix w, DType xType) {
        return switch (w.dtype()) {
            case BF16 -> xType == DType.F32 ? bf16FromF32 : bf16FromBf16;
            case F16 -> xType == DType.F32 ? f16FromF32 : f16FromF16;
            case F32 -> throw new IllegalArgumentException("the few-rows kernel takes 16-bit weights");
        };
    }

    /**
     * gemm_invariant_rows16_*: out = x · wᵀ, ending in the conv update when conv is given, or (pairOut
     * given) in bf16 silu(gate) · up of pairWidth columns instead of out.
     */
    private static void launchFewRows(CudaStream stream, Kernels kernels, DeviceBuffer x, int rows, DeviceMatrix w,
            DeviceBuffer out, GemvKernel.Conv conv, DeviceBuffer pairOut, int pairWidth) {
        int segments = Math.ceilDiv(w.cols(), SEGMENT);
        int warps = Math.clamp(segments, LEAST_WARPS, MOST_WARPS);
        int blocks = pairOut != null ? Math.ceilDiv(pairWidth, 4) : Math.ceilDiv(w.rows(), 8);
        kernels.fewRows().launch(stream, blocks, Math.ceilDiv(rows, 16), 1, 32 * warps, 0, x, rows, w.cols(),
                w.data(), w.rows(), out, conv == null ? null : conv.weight(), conv == null ? null : conv.bias(),
                conv == null ? 0 : conv.kernelSize(), conv == null ? null : conv.states(),
                conv == null ? null : conv.slots(), conv == null ? null : conv.convolved(),
                conv == null ? 0 : conv.firstColumn(), conv == null ? 0 : conv.channels(), pairOut, pairWidth);
    }

    private static int requireGridY(int blocks) {
        if (blocks > 65535) {
            throw new IllegalArgumentException("too many rows for one product: " + blocks + " row tiles");
        }
        return blocks;
    }
}
