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
     * Routed experts: a router [count, hidden] scores each token, {@code perToken} experts take it
     * (chosen and weighted as {@code router} says), and each expert is an MLP of width {@code width}
     * of the given kind. Beside them runs the block's shared MLP; the block adds both outputs.
     *
     * <p>With {@code latent} > 0 the experts sit behind a latent projection (NemotronH's
     * moe_latent_size, Nemotron-3-Super's layout): fc1_latent_proj [latent, hidden] takes the normed
     * rows down, the experts read and write {@code latent} values, and fc2_latent_proj [hidden, latent]
     * takes their weighted sum back up. The router still reads the hidden rows. 0: no projection.
     */
    record Experts(String prefix, int count, int perToken, int width, ExpertKind kind, Router router, int latent) {

        /** GraniteMoeHybrid's block_sparse_moe: gated-SiLU experts, routed by the softmax of the best scores. */
        public Experts(String prefix, int count, int perToken, int width) {
            this(prefix, count, perToken, width, ExpertKind.GATED_SILU_STACKED, Router.SOFTMAX);
        }

        /** Experts that read and write the hidden rows themselves (no latent projection). */
        public Experts(String prefix, int count, int perToken, int width, ExpertKind kind, Router router) {
            this(prefix, count, perToken, width, kind, router, 0);
        }

        public Experts {
            if (count < 1 || perToken < 1 || perToken > count || width < 1) {
                throw new IllegalArgumentException("experts: " + count + " experts, " + perToken
                        + " a token, width " + width + "; need 1 <= per token <= experts and width >= 1");
            }
            if (latent < 0) {
                throw new IllegalArgumentException("experts: latent size " + latent + "; need >= 1, or 0 for none");
            }
            if (count % router.groups() != 0 || (router.groups() > 1 && count / router.groups() < 2)) {
                throw new IllegalArgumentException("experts: " + count + " experts do not split into "
                        + router.groups() + " groups of at least 2");
            }
            if (perToken > router.groupsChosen() * (count / router.groups())) {
                throw new IllegalArgumentException("experts: " + perToken + " a token, but the " + router.groupsChosen()
                        + " chosen groups hold only " + router.groupsChosen() * (count / router.groups()));
            }
        }

        /** The name of the latent projection {@code fc1_latent_proj} or {@code fc2_latent_proj}, without ".weight". */
        public String latentName(int which) {
            return prefix + "fc" + which + "_latent_proj";
        }

        /** How many values each expert reads and writes a row: the latent size, or the hidden size without one. */
        public int rowSize(int hidden) {
            return latent > 0 ? latent : hidden;
        }
    }

    /** The layout and activation of each routed expert. */
    enum ExpertKind {
        /**
         * down(silu(gate(x)) · up(x)), gate and up rows stacked per expert, gate first: GraniteMoeHybrid's
         * block_sparse_moe.{input_linear [count, 2·width, hidden], output_linear [count, hidden, width],
         * router.layer [count, hidden]}.
         */
        GATED_SILU_STACKED,
        /**
         * down(relu(up(x))²): NemotronH's mixer.{experts.e.up_proj [width, hidden], experts.e.down_proj
         * [hidden, width] (or experts.up_proj [count, width, hidden] and experts.down_proj [count, hidden,
         * width]), gate [count, hidden], gate.e_score_correction_bias [count]}.
         */
        SQUARED_RELU;

        /** Rows of an expert's input product: gate and up (2·width), or up alone (width). */
        public int inputRows(int width) {
            return this == GATED_SILU_STACKED ? 2 * width : width;
        }
    }

    /**
     * How a router's scores [count] choose a token's experts and weigh them.
     *
     * <ul>
     *   <li>softmax (GraniteMoeHybrid): the {@code perToken} best scores (a tie to the lower expert),
     *       weighted by the softmax of those scores;
     *   <li>sigmoid (NemotronH, as DeepSeek-V3): s = sigmoid(score); the choice ranks s + the
     *       correction bias, only within the {@code groupsChosen} of {@code groups} groups of experts
     *       whose two best such values sum highest; the weights are the chosen experts' s, divided by
     *       their sum (plus 1e-20) when {@code normalize}, times {@code scale}.
     * </ul>
     */
    record Router(boolean sigmoid, int groups, int groupsChosen, boolean normalize, float scale) {

        public static final Router SOFTMAX = new Router(false, 1, 1, true, 1f);

        public Router {
            if (groups < 1 || groupsChosen < 1 || groupsChosen > groups || !(scale > 0f) || Float.isInfinite(scale)) {
                throw new IllegalArgumentException("router: " + groupsChosen + " of " + groups
                        + " groups, scale " + scale + "; need 1 <= chosen <= groups and a finite scale > 0");
            }
            if (!sigmoid && (groups != 1 || !normalize || scale != 1f)) {
                throw new IllegalArgumentException("a softmax router has one group, normalised weights and scale 1");
            }
        }

        public static Router sigmoid(int groups, int groupsChosen, boolean normalize, float scale) {
            return new Router(true, groups, groupsChosen, normalize, scale);
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
