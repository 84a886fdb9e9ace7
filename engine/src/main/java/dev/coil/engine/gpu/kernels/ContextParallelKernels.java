package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.blas.GpuMatmul;
import dev.coil.engine.load.DType;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.ops.SsmShape;

/**
 * Launches the kernels of context_parallel.cu: what a prefill sharded over several GPUs adds to the
 * one-device forward. Attention shards meet by merging partial results by their log-sum-exp;
 * Mamba-2 shards are scanned from a zero state, their states chained along the shards
 * ({@link #chainStep}) and their outputs corrected with the state that entered them
 * ({@link #correct}). Every kernel has a double-precision twin in {@code ContextParallelKernelsRef}
 * (tests).
 */
public final class ContextParallelKernels {

    private static final int SCAN_THREADS = 1024;

    private final Kernel promptDt;
    private final Kernel decayCumsum;
    private final Kernel chainStep;
    private final Kernel merge;
    private final Kernel addDecayed;

    public ContextParallelKernels(KernelModule module) {
        this.promptDt = module.kernel("mamba_prompt_dt");
        this.decayCumsum = module.kernel("ssd_decay_cumsum");
        this.chainStep = module.kernel("ssd_chain_step");
        this.merge = module.kernel("attention_merge");
        this.addDecayed = module.kernel("ssd_add_decayed");
    }

    /**
     * dt[t, h] = clamp(softplus(projected[t, column + h] + bias[h]), dtMin, dtMax) on the device.
     * projected: (rows, ·) in rows of {@code stride} floats; bias: (heads); dt: (rows, heads).
     */
    public void promptDt(CudaStream stream, DeviceBuffer projected, int stride, int column, DeviceBuffer bias,
            float dtMin, float dtMax, int rows, int heads, DeviceBuffer dt) {
        RowKernels.requireNonNegative(rows, "rows");
        RowKernels.requirePositive(heads, "heads");
        RowKernels.requireStride(stride, column + heads, "stride");
        projected.requireFloats(RowKernels.spanned(rows, column + heads, stride), "projected");
        bias.requireFloats(heads, "bias");
        dt.requireFloats((long) rows * heads, "dt");
        if (rows > 0) {
            promptDt.launch(stream, elementBlocks((long) rows * heads), 1, 1, RowKernels.ELEMENT_THREADS, 0,
                    projected, stride, column, bias, dtMin, dtMax, rows, heads, dt);
        }
    }

    /** cum[t, h] = Σ_{s ≤ t} dt[s, h] · A[h] (dt, cum: (rows, heads); A: (heads)). */
    public void decayCumsum(CudaStream stream, DeviceBuffer dt, DeviceBuffer A, int rows, int heads, DeviceBuffer cum) {
        RowKernels.requireNonNegative(rows, "rows");
        RowKernels.requirePositive(heads, "heads");
        dt.requireFloats((long) rows * heads, "dt");
        A.requireFloats(heads, "A");
        cum.requireFloats((long) rows * heads, "cum");
        if (rows > 0) {
            decayCumsum.launch(stream, heads, 1, 1, SCAN_THREADS, 0, dt, A, rows, heads, cum);
        }
    }

    /**
     * y[t, h, p] += exp(cum[t, h]) · Σ_n C[t, g, n] · state[h, p, n]: the outputs that a state
     * entering a shard adds to its scan from zero. Per group g, product = C_g · S_gᵀ (cuBLAS, f32)
     * over the group's heads, then {@link #addDecayed}. C: (rows, groups · stateSize) in rows of
     * {@code cStride} floats; state: (heads, headDim, stateSize); cum: (rows, heads); y: (rows,
     * heads · headDim), updated in place; product: scratch of rows · (heads / groups) · headDim floats.
     */
    public void correct(CudaStream stream, GpuMatmul matmul, SsmShape shape, int rows, DeviceBuffer C, int cStride,
            DeviceBuffer state, DeviceBuffer cum, DeviceBuffer y, DeviceBuffer product) {
        RowKernels.requireNonNegative(rows, "rows");
        int groupWidth = shape.groups() * shape.stateSize();
        RowKernels.requireStride(cStride, groupWidth, "cStride");
        C.requireFloats(RowKernels.spanned(rows, groupWidth, cStride), "C");
        state.requireFloats(shape.stateFloats(), "state");
        int headsPerGroup = shape.heads() / shape.groups();
        int width = headsPerGroup * shape.headDim();
        product.requireFloats((long) rows * width, "product");
        if (rows == 0) {
            return;
        }
        long groupState = (long) width * shape.stateSize();
        for (int g = 0; g < shape.groups(); g++) {
            DeviceMatrix states = new DeviceMatrix(state.floatSlice(g * groupState, groupState), DType.F32, width,
                    shape.stateSize());
            matmul.matmulStrided(stream, C.floatSlice((long) g * shape.stateSize(),
                    (long) (rows - 1) * cStride + shape.stateSize()), cStride, rows, states, product);
            addDecayed(stream, shape, rows, product, width, g * headsPerGroup, cum, y);
        }
    }

    /**
     * {@link #correct}'s sum when the products C·Sᵀ of one group's heads were taken apart (by a
     * matrix product): y[t, h, p] += exp(cum[t, h]) · product[t, (h − firstHead) · headDim + p] for
     * the {@code width / headDim} heads from firstHead. product: (rows, width); cum: (rows, heads);
     * y: (rows, heads · headDim).
     */
    public void addDecayed(CudaStream stream, SsmShape shape, int rows, DeviceBuffer product, int width,
            int firstHead, DeviceBuffer cum, DeviceBuffer y) {
        RowKernels.requireNonNegative(rows, "rows");
        if (width % shape.headDim() != 0 || firstHead < 0 || firstHead + width / shape.headDim() > shape.heads()) {
            throw new IllegalArgumentException("width " + width + " from head " + firstHead + " is not whole heads of "
                    + shape);
        }
        product.requireFloats((long) rows * width, "product");
        cum.requireFloats((long) rows * shape.heads(), "cum");
        y.requireFloats((long) rows * shape.innerSize(), "y");
        if (rows > 0) {
            addDecayed.launch(stream, elementBlocks((long) rows * width), 1, 1, RowKernels.ELEMENT_THREADS, 0, product,
                    width, cum, rows, shape.heads(), shape.headDim(), firstHead, shape.innerSize(), y);
        }
    }

    /**
     * next = exp(cum[rows − 1, h]) · entering + own, per head: the state leaving a shard of
     * {@code rows} tokens, from the one that entered it and the one its scan from zero left.
     * entering, own, next: (heads, headDim, stateSize); cum: (rows, heads), rows ≥ 1.
     */
    public void chainStep(CudaStream stream, SsmShape shape, DeviceBuffer entering, DeviceBuffer own, DeviceBuffer cum,
            int rows, DeviceBuffer next) {
        RowKernels.requirePositive(rows, "rows");
        long floats = shape.stateFloats();
        entering.requireFloats(floats, "entering");
        own.requireFloats(floats, "own");
        next.requireFloats(floats, "next");
        cum.requireFloats((long) rows * shape.heads(), "cum");
        DeviceBuffer last = cum.floatSlice((long) (rows - 1) * shape.heads(), shape.heads());
        chainStep.launch(stream, elementBlocks(floats), 1, 1, RowKernels.ELEMENT_THREADS, 0, entering, own, last,
                shape.heads(), shape.headDim() * shape.stateSize(), next);
    }

    /**
     * Merges a partial attention result (part, partLse) into an accumulated one (out, lse), row by
     * row; lse in base 2, as the flash kernel's partial launch writes it. out, part: (rows, dim);
     * lse, partLse: (rows).
     */
    public void merge(CudaStream stream, DeviceBuffer out, DeviceBuffer lse, DeviceBuffer part, DeviceBuffer partLse,
            int rows, int dim) {
        RowKernels.requireNonNegative(rows, "rows");
        RowKernels.requirePositive(dim, "dim");
        out.requireFloats((long) rows * dim, "out");
        part.requireFloats((long) rows * dim, "part");
        lse.requireFloats(rows, "lse");
        partLse.requireFloats(rows, "partLse");
        if (rows > 0) {
            int warps = RowKernels.ROW_THREADS / 32;
            merge.launch(stream, Math.ceilDiv(rows, warps), 1, 1, RowKernels.ROW_THREADS, 0, out, lse, part, partLse,
                    rows, dim);
        }
    }

    private static int elementBlocks(long count) {
        long blocks = Math.ceilDiv(count, RowKernels.ELEMENT_THREADS);
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(count + " elements are more than one launch covers");
        }
        return (int) blocks;
    }
}
