package dev.coil.engine.model;

/**
 * One residual block of a hybrid model: h = h + mixer(norm(h)) · residualMultiplier.
 * {@code prefix} is the checkpoint name prefix of the mixer's tensors (e.g. "model.layers.3.mamba.")
 * and {@code normName} the full name of the block's pre-norm weight.
 */
public sealed interface BlockSpec {

    int layer();

    String prefix();

    String normName();

    /**
     * A Mamba-2 mixer. inner = heads · headDim; conv runs over x|B|C (inner + 2·groups·stateSize channels).
     * dt is clamped to [dtMin, dtMax] in prefill only (HF's torch path; decode never clamps).
     * The gated norm normalises groups of {@code normGroupSize} channels (inner: one group).
     */
    record Mamba(int layer, String prefix, String normName, int heads, int headDim, int groups, int stateSize,
            int convKernel, int chunkSize, boolean convBias, boolean projectionBias, float dtMin, float dtMax,
            int normGroupSize, float normEps) implements BlockSpec {

        public int innerSize() {
            return heads * headDim;
        }

        public int convChannels() {
            return innerSize() + 2 * groups * stateSize;
        }

        /** Output columns of in_proj: z | xBC | dt, inner + convChannels + heads. */
        public int projectionWidth() {
            return dtColumn() + heads;
        }

        /** The first dt column of in_proj's output, after z and xBC. */
        public int dtColumn() {
            return innerSize() + convChannels();
        }
    }

    /** Causal self-attention with GQA; rotaryDim 0 means no positional encoding (NoPE). */
    record Attention(int layer, String prefix, String normName, int queryHeads, int kvHeads, int headDim, float scale,
            int rotaryDim, float ropeTheta, boolean bias) implements BlockSpec {
    }

    /**
     * A feed-forward block; see {@link MlpKind} for the tensor layouts. With {@code experts}, routed
     * experts run beside this MLP (then the shared one) and the block adds their outputs.
     */
    record Mlp(int layer, String prefix, String normName, MlpKind kind, int intermediateSize, boolean bias,
            Experts experts) implements BlockSpec {

        /** A dense MLP, without routed experts. */
        public Mlp(int layer, String prefix, String normName, MlpKind kind, int intermediateSize, boolean bias) {
            this(layer, prefix, normName, kind, intermediateSize, bias, null);
        }
    }

    /**
     * Routed experts (GraniteMoeHybrid's block_sparse_moe): a router [count, hidden] scores each token,
     * the {@code perToken} best experts take it, weighted by the softmax of their scores; each expert
     * is a gated-SiLU MLP of width {@code width} whose gate and up rows are stacked, gate first
     * (input_linear [count, 2·width, hidden], output_linear [count, hidden, width]).
     */
    record Experts(String prefix, int count, int perToken, int width) {

        public Experts {
            if (count < 1 || perToken < 1 || perToken > count || width < 1) {
                throw new IllegalArgumentException("experts: " + count + " experts, " + perToken
                        + " a token, width " + width + "; need 1 <= per token <= experts and width >= 1");
            }
        }
    }

    enum MlpKind {
        /** down(silu(gate(x)) · up(x)) with gate and up stacked in one input_linear [2F, H], gate first (Granite). */
        GATED_SILU_FUSED,
        /** down(silu(gate_proj(x)) · up_proj(x)) (Llama-style; Bamba). */
        GATED_SILU,
        /** down(relu(up(x))²) (NemotronH). */
        SQUARED_RELU
    }
}
