package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.gpu.blas.Cublas;
import dev.coil.engine.gpu.blas.GpuMatmul;
import dev.coil.engine.gpu.kernels.ArgmaxKernel;
import dev.coil.engine.gpu.kernels.CausalConv1dKernel;
import dev.coil.engine.gpu.kernels.CausalConv1dUpdateKernel;
import dev.coil.engine.gpu.kernels.ContextParallelKernels;
import dev.coil.engine.gpu.kernels.ConvertKernel;
import dev.coil.engine.gpu.kernels.EmbeddingKernel;
import dev.coil.engine.gpu.kernels.ExpertsRouterKernel;
import dev.coil.engine.gpu.kernels.FlashAttentionKernel;
import dev.coil.engine.gpu.kernels.GatedRmsNormKernel;
import dev.coil.engine.gpu.kernels.LmHeadArgmaxKernel;
import dev.coil.engine.gpu.kernels.PagedAttentionKernel;
import dev.coil.engine.gpu.kernels.PagedKvKernel;
import dev.coil.engine.gpu.kernels.ResidualAddKernel;
import dev.coil.engine.gpu.kernels.RmsNormKernel;
import dev.coil.engine.gpu.kernels.RopeKernel;
import dev.coil.engine.gpu.kernels.RoutedExpertsKernel;
import dev.coil.engine.gpu.kernels.SiluMultiplyKernel;
import dev.coil.engine.gpu.kernels.SquaredReluKernel;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.gpu.kernels.SsmStateUpdateKernel;

/** The launchers one forward uses, on one stream, with its cuBLAS product and its scratch. */
final class DeviceKernels implements AutoCloseable {

    final CudaDevice device;
    final CudaStream stream;
    final Scratch scratch;
    final GpuMatmul matmul;
    final EmbeddingKernel embedding;
    final RmsNormKernel rmsNorm;
    final GatedRmsNormKernel gatedRmsNorm;
    final ResidualAddKernel residualAdd;
    final CausalConv1dKernel conv;
    final CausalConv1dUpdateKernel convUpdate;
    final SsdScanKernel ssdScan;
    /** The precision of the prefill scan's tensor-core products ({@code --ssd-precision}). */
    final SsdScanKernel.Precision scanPrecision;
    final SsmStateUpdateKernel ssmUpdate;
    final RopeKernel rope;
    final ConvertKernel convert;
    final FlashAttentionKernel flashAttention;
    final PagedAttentionKernel pagedAttention;
    final PagedKvKernel pagedKv;
    final ArgmaxKernel argmax;
    /** A one-row decode step's lm_head and argmax in one launch. */
    final LmHeadArgmaxKernel lmHeadArgmax;
    final SiluMultiplyKernel siluMultiply;
    final SquaredReluKernel squaredRelu;
    final RoutedExpertsKernel routedExperts;
    /** A decode step's norm before routed experts and their router's scores in one launch. */
    final ExpertsRouterKernel expertsRouter;
    /** The prompt's dt (softplus, clamp) among them, which a prefill step needs too. */
    final ContextParallelKernels contextParallel;
    /**
     * {@code --batch-invariant}: every launch computes a row the same way whatever rows share it
     * (products through InvariantGemmKernel, decode attention in fixed partitions, routed experts
     * always grouped by expert, no launch that fuses a norm or an update into a few-rows product).
     */
    final boolean batchInvariant;
    private final Cublas cublas;

    DeviceKernels(CudaDevice device, CudaStream stream, SsdScanKernel.Precision scanPrecision) {
        this(device, stream, scanPrecision, false);
    }

    DeviceKernels(CudaDevice device, CudaStream stream, SsdScanKernel.Precision scanPrecision,
            boolean batchInvariant) {
        this.device = device;
        this.stream = stream;
        this.scanPrecision = scanPrecision;
        this.batchInvariant = batchInvariant;
        KernelModule module = device.kernels();
        this.cublas = Cublas.create(device);
        this.scratch = new Scratch(device);
        this.matmul = new GpuMatmul(device, cublas, batchInvariant);
        this.embedding = new EmbeddingKernel(module);
        this.rmsNorm = new RmsNormKernel(module);
        this.gatedRmsNorm = new GatedRmsNormKernel(module);
        this.residualAdd = new ResidualAddKernel(module);
        this.conv = new CausalConv1dKernel(module);
        this.convUpdate = new CausalConv1dUpdateKernel(module);
        this.ssdScan = new SsdScanKernel(module);
        this.ssmUpdate = new SsmStateUpdateKernel(module);
        this.rope = new RopeKernel(module);
        this.convert = new ConvertKernel(module);
        this.flashAttention = new FlashAttentionKernel(module);
        this.pagedAttention = new PagedAttentionKernel(module, device.multiprocessors(), batchInvariant);
        this.pagedKv = new PagedKvKernel(module);
        this.argmax = new ArgmaxKernel(module);
        this.lmHeadArgmax = new LmHeadArgmaxKernel(module, device);
        this.siluMultiply = new SiluMultiplyKernel(module);
        this.squaredRelu = new SquaredReluKernel(module);
        this.routedExperts = new RoutedExpertsKernel(module);
        this.expertsRouter = new ExpertsRouterKernel(module);
        this.contextParallel = new ContextParallelKernels(module);
    }

    /** The cuBLAS handle's call counts (host time per product, for the step profile). */
    Cublas cublas() {
        return cublas;
    }

    /** cuBLAS's workspace from now on (a captured product must not allocate one). */
    void useBlasWorkspace(dev.coil.engine.gpu.DeviceBuffer workspace) {
        cublas.useWorkspace(workspace);
    }

    @Override
    public void close() {
        device.synchronize();
        matmul.close();
        lmHeadArgmax.close();
        scratch.close();
        cublas.close();
    }
}
