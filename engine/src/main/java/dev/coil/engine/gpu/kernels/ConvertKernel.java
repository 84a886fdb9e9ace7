package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;

/**
 * Launches {@code f32_to_bf16} and {@code f32_to_f16} (convert.cu): f32 activations rounded to a
 * weight's 16-bit type, since cuBLAS multiplies operands of one type.
 */
public final class ConvertKernel {

    private final Kernel toBf16;
    private final Kernel toF16;

    public ConvertKernel(KernelModule module) {
        this.toBf16 = module.kernel("f32_to_bf16");
        this.toF16 = module.kernel("f32_to_f16");
    }

    /** out[i] = x[i] rounded to nearest even in {@code dtype} (BF16 or F16), for i < count. */
    public void launch(CudaStream stream, DeviceBuffer x, long count, DType dtype, DeviceBuffer out) {
        Kernel kernel = switch (dtype) {
            case BF16 -> toBf16;
            case F16 -> toF16;
            case F32 -> throw new IllegalArgumentException("conversion to F32 is a copy; supported targets: BF16, F16");
        };
        x.requireFloats(count, "x");
        out.requireBytes(2 * count, "out");
        if (count > 0) {
            kernel.launch(stream, Kernel.blocksFor(count, RowKernels.ELEMENT_THREADS), 1, 1,
                    RowKernels.ELEMENT_THREADS, 0, x, out, count);
        }
    }
}
