package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.ops.SsmShape;

/**
 * Launches {@code ssm_state_update_f32} (ssm_state_update.cu): the Mamba-2 decode step
 * ({@code Ops.ssmStep}) for a batch of sequences, each with its f32 state in a slot of a pool, and
 * optionally dt's bias and softplus folded in.
 *
 * <p>A warp updates one row of a head's state for a few sequences (the most blocks, to spread a small
 * step over every multiprocessor) and {@link #rowsPerWarp several} for many (a step of 64 sequences
 * moves 100 MB of state at the 300M shape, and a block of four rows spends as long starting and
 * reading B and C as moving them). Each row is summed the same way in every variant, so the choice
 * does not change a bit of the result.
 */
public final class SsmStateUpdateKernel {

    /** System property forcing the rows of state a warp updates (1 or 4), for comparisons. */
    public static final String ROWS_PROPERTY = "coil.cuda.ssmRowsPerWarp";
    /** SSM_WARPS_PER_BLOCK: warps a block. */
    private static final int WARPS_PER_BLOCK = 4;
    /** The rows a warp may take: the kernels' WARP_ROWS. */
    public static final int[] ROWS_PER_WARP = {1, 4};
    /**
     * Below this many state rows in a step (batch · heads · headDim), one row a warp. The 300M
     * shape's 24 heads of 64 rows make 1536 rows a sequence.
     */
    static final long SEVERAL_ROWS_FROM = 8L * 1536;

    private final Kernel oneRow;
    /** Four rows a warp, state rows of up to 256 floats. */
    private final Kernel fourRows;
    /** Four rows a warp, state rows of up to 128 floats (fewer registers, more blocks a multiprocessor). */
    private final Kernel fourNarrowRows;

    public SsmStateUpdateKernel(KernelModule module) {
        this.oneRow = module.kernel("ssm_state_update_f32").waitsForPreviousKernel();
        this.fourRows = module.kernel("ssm_state_update_f32_rows4").waitsForPreviousKernel();
        this.fourNarrowRows = module.kernel("ssm_state_update_f32_rows4_narrow").waitsForPreviousKernel();
    }

    /**
     * The rows of state a warp updates for a step of {@code batch} sequences: {@link #ROWS_PROPERTY}
     * when set, else 1 below {@link #SEVERAL_ROWS_FROM} rows in the step and 4 from there.
     */
    public static int rowsPerWarp(int batch, SsmShape shape) {
        String forced = System.getProperty(ROWS_PROPERTY);
        if (forced != null) {
            int rows = Integer.parseInt(forced.trim());
            requireVariant(rows);
            return rows;
        }
        return (long) batch * shape.heads() * shape.headDim() >= SEVERAL_ROWS_FROM ? 4 : 1;
    }

    private static void requireVariant(int rowsPerWarp) {
        if (rowsPerWarp != 1 && rowsPerWarp != 4) {
            throw new IllegalArgumentException("a warp takes 1 or 4 rows of state, not " + rowsPerWarp);
        }
    }

    /** Where dt comes from: already final (dtBias null, no softplus), or raw in_proj output to finish here. */
    public record Step(DeviceBuffer dt, int dtStride, DeviceBuffer dtBias, boolean softplus) {}

    /**
     * For each sequence b, head h (group g = h / (heads / groups)), with dt' from {@code step}:
     * S = exp(dt'·A[h])·S + dt'·x[b, h] ⊗ B[b, g]; y[b, h] = S·C[b, g] + D[h]·x[b, h].
     * x: (batch, heads · headDim) in rows of xStride floats; dt: (batch, heads) in rows of
     * step.dtStride; A, D: (heads); B, C: (batch, groups · stateSize) in rows of bcStride floats;
     * states: (slots, heads, headDim, stateSize) f32; slots: (batch) int32 on the device, distinct and
     * within the pool (not checked on the device); y: (batch, heads · headDim).
     */
    public void launch(CudaStream stream, SsmShape shape, int batch, DeviceBuffer x, int xStride, Step step,
            DeviceBuffer A, DeviceBuffer B, DeviceBuffer C, int bcStride, DeviceBuffer D, DeviceBuffer states,
            DeviceBuffer slots, DeviceBuffer y) {
        launch(stream, shape, batch, x, xStride, step, A, B, C, bcStride, D, states, slots, y, null, 0);
    }

    /**
     * As above, y multiplied by silu(z) when the gate z is given: (batch, heads · headDim) in rows of
     * zStride floats. That is the value Mamba-2's gated RMSNorm starts from, computed as
     * {@link GemvKernel#projectGatedNorm} computes it, so that the norm can take it as it is (z null there).
     */
    public void launch(CudaStream stream, SsmShape shape, int batch, DeviceBuffer x, int xStride, Step step,
            DeviceBuffer A, DeviceBuffer B, DeviceBuffer C, int bcStride, DeviceBuffer D, DeviceBuffer states,
            DeviceBuffer slots, DeviceBuffer y, DeviceBuffer z, int zStride) {
        launch(stream, rowsPerWarp(batch, shape), shape, batch, x, xStride, step, A, B, C, bcStride, D, states, slots,
                y, z, zStride);
    }

    /** As above, with {@code rowsPerWarp} (1 or 4) rows of state a warp, whatever the batch. */
    public void launch(CudaStream stream, int rowsPerWarp, SsmShape shape, int batch, DeviceBuffer x, int xStride,
            Step step, DeviceBuffer A, DeviceBuffer B, DeviceBuffer C, int bcStride, DeviceBuffer D,
            DeviceBuffer states, DeviceBuffer slots, DeviceBuffer y, DeviceBuffer z, int zStride) {
        requireVariant(rowsPerWarp);
        Kernel kernel = rowsPerWarp == 1 ? oneRow : shape.stateSize() <= 128 ? fourNarrowRows : fourRows;
        int heads = shape.heads();
        int inner = shape.innerSize();
        int groupWidth = shape.groups() * shape.stateSize();
        RowKernels.requireNonNegative(batch, "batch");
        RowKernels.requireStride(xStride, inner, "xStride");
        RowKernels.requireStride(step.dtStride(), heads, "dtStride");
        RowKernels.requireStride(bcStride, groupWidth, "bcStride");
        if (heads > 65535 || batch > 65535) {
            throw new IllegalArgumentException("at most 65535 heads and sequences per launch, not " + heads + " heads, "
                    + batch + " sequences");
        }
        x.requireFloats(RowKernels.spanned(batch, inner, xStride), "x");
        step.dt().requireFloats(RowKernels.spanned(batch, heads, step.dtStride()), "dt");
        if (step.dtBias() != null) {
            step.dtBias().requireFloats(heads, "dtBias");
        }
        A.requireFloats(heads, "A");
        D.requireFloats(heads, "D");
        B.requireFloats(RowKernels.spanned(batch, groupWidth, bcStride), "B");
        C.requireFloats(RowKernels.spanned(batch, groupWidth, bcStride), "C");
        states.requireFloats(shape.stateFloats(), "states");
        if (states.address() % 16 != 0) {
            throw new IllegalArgumentException("states must start on a 16-byte boundary (the kernel moves state rows "
                    + "4 floats at a time); it starts at an offset of " + states.address() % 16);
        }
        slots.requireFloats(batch, "slots");
        y.requireFloats((long) batch * inner, "y");
        if (z != null) {
            RowKernels.requireStride(zStride, inner, "zStride");
            z.requireFloats(RowKernels.spanned(batch, inner, zStride), "z");
        }
        if (batch == 0) {
            return;
        }
        int blockRows = WARPS_PER_BLOCK * rowsPerWarp;
        int rowBlocks = (shape.headDim() + blockRows - 1) / blockRows;
        int sharedBytes = 2 * shape.stateSize() * Float.BYTES;
        if (sharedBytes > 48 * 1024) {
            throw new IllegalArgumentException("stateSize " + shape.stateSize() + " is beyond the supported 6144");
        }
        kernel.launch(stream, rowBlocks, heads, batch, WARPS_PER_BLOCK * 32, sharedBytes, x, xStride, step.dt(),
                step.dtStride(), step.dtBias(), step.softplus() ? 1 : 0, A, B, C, bcStride, D, states, slots, y,
                z, zStride, heads, shape.headDim(), shape.groups(), shape.stateSize());
    }
}
