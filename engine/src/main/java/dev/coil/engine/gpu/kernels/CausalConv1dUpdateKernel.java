package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/**
 * Launches {@code causal_conv1d_update_f32} (causal_conv1d.cu): the decode step of the causal conv1d
 * for a batch of sequences, each with its conv state in a slot of a shared pool.
 */
public final class CausalConv1dUpdateKernel {

    private final Kernel kernel;

    public CausalConv1dUpdateKernel(KernelModule module) {
        this.kernel = module.kernel("causal_conv1d_update_f32").waitsForPreviousKernel();
    }

    /**
     * For each sequence b: out[b, :] = the conv of its state and one new input row, as
     * {@code Ops.causalConv1d} with one token; its state slot is shifted by that row.
     * input: (batch, channels) in rows of inputStride floats; weight: (channels, kernelSize);
     * bias: (channels) or null; states: (slots, kernelSize - 1, channels); slots: (batch) int32 on
     * the device, distinct and below the pool's slot count (the caller's bookkeeping; not checked on
     * the device); out: (batch, channels).
     */
    public void launch(CudaStream stream, DeviceBuffer input, int inputStride, int batch, int channels,
            DeviceBuffer weight, DeviceBuffer bias, int kernelSize, DeviceBuffer states, DeviceBuffer slots,
            DeviceBuffer out) {
        RowKernels.requireNonNegative(batch, "batch");
        CausalConv1dKernel.checkInputAndWeights(input, inputStride, batch, channels, weight, bias, kernelSize);
        slots.requireFloats(batch, "slots");
        out.requireFloats((long) batch * channels, "out");
        if (batch == 0) {
            return;
        }
        long count = (long) batch * channels;
        kernel.launch(stream, Kernel.blocksFor(count, RowKernels.ELEMENT_THREADS), 1, 1, RowKernels.ELEMENT_THREADS, 0,
                input, inputStride, batch, channels, weight, bias, kernelSize, states, slots, out);
    }
}
