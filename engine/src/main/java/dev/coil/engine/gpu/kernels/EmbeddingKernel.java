package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/** Launches {@code embedding_bf16|f16|f32} (embedding.cu): h = E[ids] · embedding multiplier. */
public final class EmbeddingKernel {

    private final Kernel bf16;
    private final Kernel f16;
    private final Kernel f32;

    public EmbeddingKernel(KernelModule module) {
        this.bf16 = module.kernel("embedding_bf16");
        this.f16 = module.kernel("embedding_f16");
        this.f32 = module.kernel("embedding_f32");
    }

    /**
     * out[t, :] = table[ids[t], :] · multiplier, widened to f32. ids: (tokens) int32 on the device;
     * table: (vocab, hidden); out: (tokens, hidden) f32. An id outside the vocabulary gives a NaN row.
     */
    public void launch(CudaStream stream, DeviceBuffer ids, int tokens, DeviceMatrix table, float multiplier,
            DeviceBuffer out) {
        RowKernels.requireNonNegative(tokens, "tokens");
        ids.requireFloats(tokens, "ids");
        out.requireFloats((long) tokens * table.cols(), "out");
        Kernel kernel = switch (table.dtype()) {
            case BF16 -> bf16;
            case F16 -> f16;
            case F32 -> f32;
        };
        if (tokens > 0) {
            kernel.launch(stream, tokens, 1, 1, RowKernels.ROW_THREADS, 0, ids, table.data(), out, table.cols(),
                    table.rows(), multiplier);
        }
    }
}
