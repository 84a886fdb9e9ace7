package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/**
 * Launches {@code causal_conv1d_f32} then {@code causal_conv1d_state_f32} (causal_conv1d.cu): the
 * contract of {@code Ops.causalConv1d} for one sequence's prompt chunk, its state carried in and out;
 * or their packed twins for the prompt chunks of several sequences at once.
 */
public final class CausalConv1dKernel {

    /** Rows a thread of the packed conv slides its window down (causal_conv1d.cu's COIL_CONV_ROWS). */
    private static final int ROWS_PER_THREAD = 16;

    private final Kernel convolve;
    private final Kernel carry;
    private final Kernel convolvePacked;
    private final Kernel carryPacked;

    public CausalConv1dKernel(KernelModule module) {
        this.convolve = module.kernel("causal_conv1d_f32");
        this.carry = module.kernel("causal_conv1d_state_f32");
        this.convolvePacked = module.kernel("causal_conv1d_varlen_f32");
        this.carryPacked = module.kernel("causal_conv1d_state_varlen_f32");
    }

    /**
     * {@link #launch} for every chunk of {@code chunks} at once, each with the state in its slot of
     * {@code states} (slots, kernelSize - 1, channels): the same sums and states as one launch a
     * chunk. input: (rows, channels) in rows of inputStride floats; out: (rows, channels).
     */
    public void launchPacked(CudaStream stream, DeviceBuffer input, int inputStride, int channels, DeviceBuffer weight,
            DeviceBuffer bias, int kernelSize, DeviceBuffer states, PackedChunks chunks, DeviceBuffer out) {
        int rows = chunks.end();
        if (chunks.rowChunk() == null) {
            throw new IllegalArgumentException("the packed conv reads each row's chunk: rowChunk is required");
        }
        check(input, inputStride, rows, channels, weight, bias, kernelSize, states, "states", out);
        if (rows == 0) {
            return;
        }
        convolvePacked.launch(stream, Kernel.blocksFor(channels, RowKernels.ELEMENT_THREADS),
                Math.ceilDiv(rows, ROWS_PER_THREAD), 1, RowKernels.ELEMENT_THREADS, 0, input, inputStride, rows, channels, weight, bias, kernelSize, states,
                chunks.slots(), chunks.starts(), chunks.rowChunk(), out);
        if (kernelSize > 1) {
            carryPacked.launch(stream, Kernel.blocksFor(channels, RowKernels.ELEMENT_THREADS), chunks.chunks(), 1,
                    RowKernels.ELEMENT_THREADS, 0, input, inputStride, channels, kernelSize, states, chunks.slots(),
                    chunks.starts());
        }
    }

    /**
     * out[t, c] = silu(bias[c] + Σ_j weight[c, j] · e[t + j, c]), e = state rows then input rows.
     * input: (tokens, channels) in rows of inputStride floats; weight: (channels, kernelSize);
     * bias: (channels) or null; state: (kernelSize - 1, channels), updated in place to the last
     * kernelSize - 1 inputs; out: (tokens, channels), not overlapping input.
     */
    public void launch(CudaStream stream, DeviceBuffer input, int inputStride, int tokens, int channels,
            DeviceBuffer weight, DeviceBuffer bias, int kernelSize, DeviceBuffer state, DeviceBuffer out) {
        RowKernels.requireNonNegative(tokens, "tokens");
        check(input, inputStride, tokens, channels, weight, bias, kernelSize, state, "state", out);
        if (tokens == 0) {
            return;
        }
        long count = (long) tokens * channels;
        convolve.launch(stream, Kernel.blocksFor(count, RowKernels.ELEMENT_THREADS), 1, 1, RowKernels.ELEMENT_THREADS,
                0, input, inputStride, tokens, channels, weight, bias, kernelSize, state, out);
        if (kernelSize > 1) {
            carry.launch(stream, Kernel.blocksFor(channels, RowKernels.ELEMENT_THREADS), 1, 1,
                    RowKernels.ELEMENT_THREADS, 0, input, inputStride, tokens, channels, kernelSize, state);
        }
    }

    /** The sizes both launches need: rows of input, the weights, one state of kernelSize - 1 rows, out. */
    private static void check(DeviceBuffer input, int inputStride, int rows, int channels, DeviceBuffer weight,
            DeviceBuffer bias, int kernelSize, DeviceBuffer state, String stateName, DeviceBuffer out) {
        checkInputAndWeights(input, inputStride, rows, channels, weight, bias, kernelSize);
        state.requireFloats((long) (kernelSize - 1) * channels, stateName);
        out.requireFloats((long) rows * channels, "out");
    }

    /**
     * What every conv launch checks, the decode update's included: rows of input in rows of
     * inputStride floats, weight (channels, kernelSize) and bias (channels) or null.
     */
    static void checkInputAndWeights(DeviceBuffer input, int inputStride, int rows, int channels,
            DeviceBuffer weight, DeviceBuffer bias, int kernelSize) {
        RowKernels.requirePositive(channels, "channels");
        RowKernels.requirePositive(kernelSize, "kernelSize");
        RowKernels.requireStride(inputStride, channels, "inputStride");
        input.requireFloats(RowKernels.spanned(rows, channels, inputStride), "input");
        weight.requireFloats((long) channels * kernelSize, "weight");
        if (bias != null) {
            bias.requireFloats(channels, "bias");
        }
    }
}
