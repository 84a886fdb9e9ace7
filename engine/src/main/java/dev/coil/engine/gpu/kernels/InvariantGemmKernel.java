package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/**
 * Launches the {@code gemm_invariant_*} kernels (gemm_invariant.cu), the linear layer of
 * {@code --batch-invariant}: out[t, n] = Σ_k x[t, k] · w[n, k] with each output summed in an order
 * fixed by k alone, so that a row's outputs are the same bits whatever rows share its launch and
 * wherever it sits among them. 16-bit weights multiply x rounded to their type on the tensor cores
 * (segments of 256 k, each summed 32 k at a time from zero, the segments added in order); f32
 * weights multiply f32 x one fmaf at a time in k order. Up to {@link #FEW_ROWS} rows (decode steps)
 * go to a kernel that spreads a product over (16 rows, segment, 8 outputs) warps, more to 64 × 128
 * tiles: both keep the order. Launched with programmatic stream serialization where the device
 * allows it: the few-rows kernel reads its first weights while the kernel before it finishes.
 */
public final class InvariantGemmKernel {

    /**
     * The most rows the segment-parallel kernel takes (gemm_invariant_rows16_*, 16 a row of blocks,
     * each reading the weights again, mostly from L2): decode steps.
     */
    public static final int FEW_ROWS = 128;
    /** k a segment (gemm_invariant.cu's SEGMENT). */
    static final int SEGMENT = 256;
    /** The segment-parallel kernel's partial sums (MOST_SEGMENTS): wider products take the tiles. */
    static final int MOST_SEGMENTS = 96;
    private static final int MOST_WARPS = 16;
    private static final int LEAST_WARPS = 4;
    private static final int TILE_ROWS = 64;
    private static final int TILE_OUTPUTS = 128;
    private static final int TILE_THREADS = 256;
    private static final int F32_TILE = 32;

    /** The kernels of one weight type and operand type: {few rows, tiles}. */
    private record Pair(Kernel fewRows, Kernel tiles) {}

    private final Pair bf16FromF32;
    private final Pair bf16FromBf16;
    private final Pair f16FromF32;
    private final Pair f16FromF16;
    private final Kernel f32;

    public InvariantGemmKernel(KernelModule module) {
        this.bf16FromF32 = pair(module, "bf16_xf32");
        this.bf16FromBf16 = pair(module, "bf16_xbf16");
        this.f16FromF32 = pair(module, "f16_xf32");
        this.f16FromF16 = pair(module, "f16_xf16");
        this.f32 = module.kernel("gemm_invariant_f32").waitsForPreviousKernel();
    }

    private static Pair pair(KernelModule module, String suffix) {
        return new Pair(module.kernel("gemm_invariant_rows16_" + suffix).waitsForPreviousKernel(),
                module.kernel("gemm_invariant_tiles_" + suffix).waitsForPreviousKernel());
    }

    /**
     * out = x · wᵀ; x: (rows, w.cols()) in {@code xType} (F32, or w's own 16-bit type), out: (rows,
     * w.rows()) f32, overwritten.
     */
    public void project(CudaStream stream, DeviceBuffer x, DType xType, int rows, DeviceMatrix w, DeviceBuffer out) {
        project(stream, x, xType, rows, w, out, rows <= FEW_ROWS);
    }

    /** As above, choosing the kernel: {@code fewRows} the segment-parallel one (at most {@link #FEW_ROWS} rows). */
    void project(CudaStream stream, DeviceBuffer x, DType xType, int rows, DeviceMatrix w, DeviceBuffer out,
            boolean fewRows) {
        RowKernels.requireNonNegative(rows, "rows");
        int cols = w.cols();
        int outputs = w.rows();
        if (xType != DType.F32 && xType != w.dtype()) {
            throw new IllegalArgumentException("a " + xType + " operand for " + w.dtype() + " weights; F32 or "
                    + w.dtype());
        }
        x.requireBytes((long) rows * cols * xType.bytes(), "x");
        out.requireFloats((long) rows * outputs, "out");
        if (fewRows && rows > FEW_ROWS) {
            throw new IllegalArgumentException("the few-rows kernel takes at most " + FEW_ROWS + " rows, not " + rows);
        }
        if (rows == 0 || outputs == 0) {
            return;
        }
        if (w.dtype() == DType.F32) {
            f32.launch(stream, Math.ceilDiv(outputs, F32_TILE), requireGridY(Math.ceilDiv(rows, F32_TILE)), 1, 256,
                    0, x, rows, cols, w.data(), outputs, out);
            return;
        }
        Pair kernels = switch (w.dtype()) {
            case BF16 -> xType == DType.F32 ? bf16FromF32 : bf16FromBf16;
            case F16 -> xType == DType.F32 ? f16FromF32 : f16FromF16;
            case F32 -> throw new AssertionError();
        };
        int segments = Math.ceilDiv(cols, SEGMENT);
        if (fewRows && segments <= MOST_SEGMENTS) {
            int warps = Math.clamp(segments, LEAST_WARPS, MOST_WARPS);
            kernels.fewRows().launch(stream, Math.ceilDiv(outputs, 8), Math.ceilDiv(rows, 16), 1, 32 * warps, 0, x,
                    rows, cols, w.data(), outputs, out);
        } else {
            kernels.tiles().launch(stream, Math.ceilDiv(outputs, TILE_OUTPUTS),
                    requireGridY(Math.ceilDiv(rows, TILE_ROWS)), 1, TILE_THREADS, 0, x, rows, cols, w.data(), outputs,
                    out);
        }
    }

    private static int requireGridY(int blocks) {
        if (blocks > 65535) {
            throw new IllegalArgumentException("too many rows for one product: " + blocks + " row tiles");
        }
        return blocks;
    }
}
