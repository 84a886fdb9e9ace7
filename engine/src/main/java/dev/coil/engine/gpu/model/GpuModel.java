package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.load.Checkpoint;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.runner.LoadedModel;
import java.util.List;

/**
 * {@code HybridModel}'s forward on one CUDA device, for one standalone sequence at a time (the
 * serving engine's {@link GpuStep} over a cache of the sequence's own):
 * <pre>
 *   h = E[ids] · embeddingMultiplier
 *   for each block:  h = h + mixer(rmsnorm(h)) · residualMultiplier
 *   logits = lm_head(rmsnorm_final(h[last])) / logitsDivisor
 * </pre>
 * Weights stay in their storage dtype; activations are f32. A product with bf16 weights rounds its
 * input to bf16 (cuBLAS multiplies operands of one type); prompt attention runs on bf16 operands.
 * Everything else, the SSM state and the K/V store included, is f32.
 */
public final class GpuModel implements AutoCloseable {

    private final ModelConfig config;
    private final GpuWeights weights;
    private final DeviceKernels kernels;

    private GpuModel(ModelConfig config, GpuWeights weights, DeviceKernels kernels) {
        this.config = config;
        this.weights = weights;
        this.kernels = kernels;
    }

    /** Uploads {@code model}'s weights to {@code device}; the forward runs on {@code stream}. */
    public static GpuModel upload(CudaDevice device, CudaStream stream, LoadedModel model) {
        return upload(device, stream, model, SsdScanKernel.Precision.F32);
    }

    /** As above, the prefill's SSD scan taking its products in {@code scanPrecision}. */
    public static GpuModel upload(CudaDevice device, CudaStream stream, LoadedModel model,
            SsdScanKernel.Precision scanPrecision) {
        return upload(device, stream, model.config(), model.checkpoint(), scanPrecision);
    }

    public static GpuModel upload(CudaDevice device, CudaStream stream, ModelConfig config, Checkpoint checkpoint) {
        return upload(device, stream, config, checkpoint, SsdScanKernel.Precision.F32);
    }

    private static GpuModel upload(CudaDevice device, CudaStream stream, ModelConfig config, Checkpoint checkpoint,
            SsdScanKernel.Precision scanPrecision) {
        device.makeCurrent();
        GpuWeights weights = new GpuWeights(device, config, checkpoint);
        try {
            return new GpuModel(config, weights, new DeviceKernels(device, stream, scanPrecision));
        } catch (RuntimeException e) {
            weights.close();
            throw e;
        }
    }

    public ModelConfig config() {
        return config;
    }

    /** Bytes of weight matrices a decode step reads (the projections and lm_head; not the embedding table). */
    public long decodeWeightBytes() {
        return weights.matrixBytes();
    }

    /** A fresh sequence with room for {@code capacity} tokens, its state zero. */
    public GpuSequence newSequence(int capacity) {
        return new GpuSequence(config, weights, kernels, capacity);
    }

    /** Runs a prompt (SSD scan, flash attention, dt clamped) and returns the logits after its last token [vocab]. */
    public float[] prefill(GpuSequence sequence, int[] tokens) {
        return forward(sequence, tokens, tokens.length);
    }

    /** Runs one generated token (conv and state updates, decode attention) and returns the next logits [vocab]. */
    public float[] decode(GpuSequence sequence, int token) {
        return forward(sequence, new int[] {token}, 0);
    }

    private float[] forward(GpuSequence sequence, int[] tokens, int promptTokens) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("forward needs at least one token");
        }
        sequence.requireRoom(tokens.length);
        Batch batch = new Batch(List.of(new Batch.Segment(sequence.state, tokens, promptTokens, Batch.Logits.LAST)));
        return sequence.step.forward(batch).get(0).logits();
    }

    @Override
    public void close() {
        kernels.close();
        weights.close();
    }
}
