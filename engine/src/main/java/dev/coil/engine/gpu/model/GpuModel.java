package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.load.Checkpoint;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.runner.LoadedModel;

/**
 * {@code HybridModel}'s forward on one CUDA device, for one sequence at a time:
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
        return upload(device, stream, model.config(), model.checkpoint());
    }

    public static GpuModel upload(CudaDevice device, CudaStream stream, ModelConfig config, Checkpoint checkpoint) {
        device.makeCurrent();
        GpuWeights weights = new GpuWeights(device, config, checkpoint);
        try {
            return new GpuModel(config, weights, new DeviceKernels(device, stream));
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
        return new GpuSequence(kernels.device, config.blocks(), capacity);
    }

    /** Runs a prompt (SSD scan, flash attention, dt clamped) and returns the logits after its last token [vocab]. */
    public float[] prefill(GpuSequence sequence, int[] tokens) {
        return forward(sequence, tokens, true);
    }

    /** Runs one generated token (conv and state updates, decode attention) and returns the next logits [vocab]. */
    public float[] decode(GpuSequence sequence, int token) {
        return forward(sequence, new int[] {token}, false);
    }

    private float[] forward(GpuSequence sequence, int[] tokens, boolean prompt) {
        int rows = tokens.length;
        if (rows == 0) {
            throw new IllegalArgumentException("forward needs at least one token");
        }
        for (int id : tokens) {
            if (id < 0 || id >= config.vocabSize()) {
                throw new IllegalArgumentException(
                        "token id " + id + " is outside the vocabulary [0, " + config.vocabSize() + ")");
            }
        }
        sequence.requireRoom(rows);
        kernels.device.makeCurrent();
        int hidden = config.hiddenSize();
        long activations = (long) rows * hidden;
        Scratch scratch = kernels.scratch;
        DeviceBuffer ids = scratch.floats("model.ids", rows);
        ids.copyFrom(tokens);
        DeviceBuffer h = scratch.floats("model.h", activations);
        DeviceBuffer normed = scratch.floats("model.normed", activations);
        DeviceBuffer update = scratch.floats("model.update", activations);
        kernels.embedding.launch(kernels.stream, ids, rows, weights.embeddings, config.embeddingMultiplier(), h);

        for (int b = 0; b < weights.blocks.size(); b++) {
            GpuWeights.Block block = weights.blocks.get(b);
            kernels.rmsNorm.launch(kernels.stream, h, rows, hidden, block.norm(), config.normEps(), normed);
            switch (block.mixer()) {
                case GpuWeights.Mamba mamba ->
                        GpuMamba.forward(kernels, mamba, sequence.mamba(b), normed, rows, prompt, update);
                case GpuWeights.Attention attention -> GpuAttention.forward(kernels, attention, sequence,
                        sequence.attention(b), normed, rows, prompt, update);
                case GpuWeights.Mlp mlp -> GpuFeedForward.forward(kernels, mlp, normed, rows, update);
            }
            kernels.residualAdd.launch(kernels.stream, h, update, activations, config.residualMultiplier());
        }
        sequence.advance(rows);

        DeviceBuffer last = h.floatSlice((long) (rows - 1) * hidden, hidden);
        DeviceBuffer finalNormed = scratch.floats("model.final", hidden);
        kernels.rmsNorm.launch(kernels.stream, last, 1, hidden, weights.finalNorm, config.normEps(), finalNormed);
        DeviceBuffer logits = scratch.floats("model.logits", config.vocabSize());
        kernels.matmul.matmul(kernels.stream, finalNormed, 1, weights.lmHead, logits);
        float[] result = new float[config.vocabSize()];
        logits.copyTo(result);
        if (config.logitsDivisor() != 1f) {
            for (int i = 0; i < result.length; i++) {
                result[i] /= config.logitsDivisor();
            }
        }
        return result;
    }

    @Override
    public void close() {
        kernels.close();
        weights.close();
    }
}
