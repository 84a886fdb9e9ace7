package dev.coil.engine.model;

import java.util.List;

/**
 * What Coil needs to know of a checkpoint, in one shape for every supported architecture:
 * h = E[ids]·embeddingMultiplier → blocks → finalNorm → lm_head / logitsDivisor.
 *
 * @param architecture  the HF class name ("GraniteMoeHybridForCausalLM")
 * @param embeddingName tensor name of the embedding matrix [vocab, hidden]
 * @param lmHeadName    tensor name of lm_head [vocab, hidden], or null when tied to the embeddings
 * @param contextLength the context window the model was configured for (max_position_embeddings), 0 if unknown
 */
public record ModelConfig(
        String architecture,
        int vocabSize,
        int hiddenSize,
        int contextLength,
        float embeddingMultiplier,
        float residualMultiplier,
        float logitsDivisor,
        float normEps,
        String embeddingName,
        String finalNormName,
        String lmHeadName,
        List<BlockSpec> blocks) {

    public ModelConfig {
        blocks = List.copyOf(blocks);
    }

    public long countBlocks(Class<? extends BlockSpec> kind) {
        return blocks.stream().filter(kind::isInstance).count();
    }

    /** True when some block routes tokens to experts (a mixture of experts). */
    public boolean hasRoutedExperts() {
        return blocks.stream().anyMatch(block -> block instanceof BlockSpec.Mlp mlp && mlp.experts() != null);
    }
}
