package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/**
 * Launches the kernels of context_parallel.cu: what a prefill sharded over several GPUs adds to the
 * one-device forward: the prompt's dt on the device, and the merge of partial attention results
 * by their log-sum-exp. (Mamba-2 shards pass their states with {@code SsdScanKernel.enterState}.)
 * Each is checked against a double-precision sum in ContextParallelKernelsTest.
 */
public final class ContextParallelKernels {


    private final Kernel promptDt;
    private final Kernel promptDtPacked;
    private final Kernel merge;

    public ContextParallelKernels(KernelModule module) {
        this.promptDt = module.kernel("mamba_prompt_dt");
        this.promptDtPacked = module.kernel("mamba_prompt_dt_varlen");
        this.merge = module.kernel("attention_merge");
    }

    /**
     * dt[t, h] = softplus(projected[t, column + h] + bias[h]) on the device, as
     * {@code Mamba2Mixer.softplus} rounds it, clamped to [dtMin, dtMax] for rows t &lt; clamped.
     * projected: (rows, ·) in rows of {@code stride} floats; bias: (heads); dt: (rows, heads).
     */
    public void promptDt(CudaStream stream, DeviceBuffer projected, int stride, int column, DeviceBuffer bias,
            float dtMin, float dtMax, int rows, int heads, int clamped, DeviceBuffer dt) {
        RowKernels.requireNonNegative(rows, "rows");
        checkDt(projected, stride, column, bias, rows, heads, dt);
        if (rows > 0) {
            promptDt.launch(stream, elementBlocks((long) rows * heads), 1, 1, RowKernels.ELEMENT_THREADS, 0,
                    projected, stride, column, bias, dtMin, dtMax, rows, heads, clamped, dt);
        }
    }

    /**
     * {@link #promptDt} for every chunk of {@code chunks} at once, each clamping its own first
     * {@code clamped[s]} rows. projected: (rows, ·) in rows of {@code stride} floats; dt: (rows, heads).
     */
    public void promptDtPacked(CudaStream stream, DeviceBuffer projected, int stride, int column, DeviceBuffer bias,
            float dtMin, float dtMax, int heads, PackedChunks chunks, DeviceBuffer dt) {
        int rows = chunks.end();
        if (chunks.clamped() == null || chunks.rowChunk() == null) {
            throw new IllegalArgumentException("the packed dt reads each chunk's clamped rows and each row's chunk");
        }
        checkDt(projected, stride, column, bias, rows, heads, dt);
        if (rows > 0) {
            promptDtPacked.launch(stream, elementBlocks((long) rows * heads), 1, 1, RowKernels.ELEMENT_THREADS, 0,
                    projected, stride, column, bias, dtMin, dtMax, rows, heads, chunks.starts(), chunks.clamped(),
                    chunks.rowChunk(), dt);
        }
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

    /** The sizes both dt launches need: rows of projected holding the dt columns, the bias, dt. */
    private static void checkDt(DeviceBuffer projected, int stride, int column, DeviceBuffer bias, int rows, int heads,
            DeviceBuffer dt) {
        RowKernels.requirePositive(heads, "heads");
        RowKernels.requireStride(stride, column + heads, "stride");
        projected.requireFloats(RowKernels.spanned(rows, column + heads, stride), "projected");
        bias.requireFloats(heads, "bias");
        dt.requireFloats((long) rows * heads, "dt");
    }

    private static int elementBlocks(long count) {
        long blocks = Math.ceilDiv(count, RowKernels.ELEMENT_THREADS);
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(count + " elements are more than one launch covers");
        }
        return (int) blocks;
    }
}
