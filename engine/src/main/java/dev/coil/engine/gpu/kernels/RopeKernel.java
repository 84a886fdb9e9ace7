package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/** Launches {@code rope_f32} (rope.cu): the contract of {@code Ops.rope}, with per-row positions for batches. */
public final class RopeKernel {

    private final Kernel kernel;

    public RopeKernel(KernelModule module) {
        this.kernel = module.kernel("rope_f32").waitsForPreviousKernel();
    }

    /**
     * Rotate-half rotary embedding on the first {@code rotaryDim} dims of each head, in place.
     * x: (tokens, heads, headDim) f32; row t is at position firstPosition + t.
     */
    public void launch(CudaStream stream, DeviceBuffer x, int tokens, int heads, int headDim, int rotaryDim,
            float theta, int firstPosition) {
        check(x, tokens, heads, headDim, rotaryDim);
        RowKernels.requireNonNegative(firstPosition, "firstPosition");
        if (tokens > 0) {
            kernel.launch(stream, tokens, 1, 1, RowKernels.ROW_THREADS, 0, x, null, heads, headDim, rotaryDim, theta,
                    firstPosition);
        }
    }

    /** As {@link #launch}, with row t at position positions[t] (positions: (tokens) int32 on the device). */
    public void launchAtPositions(CudaStream stream, DeviceBuffer x, DeviceBuffer positions, int tokens, int heads,
            int headDim, int rotaryDim, float theta) {
        check(x, tokens, heads, headDim, rotaryDim);
        positions.requireFloats(tokens, "positions");
        if (tokens > 0) {
            kernel.launch(stream, tokens, 1, 1, RowKernels.ROW_THREADS, 0, x, positions, heads, headDim, rotaryDim,
                    theta, 0);
        }
    }

    private static void check(DeviceBuffer x, int tokens, int heads, int headDim, int rotaryDim) {
        RowKernels.requireNonNegative(tokens, "tokens");
        RowKernels.requirePositive(heads, "heads");
        RowKernels.requirePositive(headDim, "headDim");
        if (rotaryDim <= 0 || rotaryDim > headDim || rotaryDim % 2 != 0) {
            throw new IllegalArgumentException(
                    "rotaryDim (" + rotaryDim + ") must be even and within headDim (" + headDim + ")");
        }
        x.requireFloats((long) tokens * heads * headDim, "x");
    }
}
