package dev.coil.engine.model;

import dev.coil.engine.ops.Ops;

/**
 * The MLP blocks: down(silu(gate(x)) · up(x)) (Granite, Bamba) or down(relu(up(x))²) (NemotronH).
 * Where the checkpoint stores gate and up as one matrix (Granite's input_linear) they run as one
 * product over the stacked rows, so each decode step reads them in one pass. A block with routed
 * experts (a mixture of experts) adds their output to this shared MLP's: experts(x) + mlp(x).
 */
public final class FeedForward implements Mixer {

    private final BlockSpec.Mlp spec;
    private final Linear gateAndUp; // [2F, hidden], gate rows first; or null
    private final Linear gate; // [F, hidden]; null when stacked or squared ReLU
    private final Linear up; // [F, hidden]; null when stacked
    private final Linear down; // [hidden, F]
    private final RoutedExperts experts; // or null

    private FeedForward(BlockSpec.Mlp spec, Linear gateAndUp, Linear gate, Linear up, Linear down,
            RoutedExperts experts) {
        this.spec = spec;
        this.gateAndUp = gateAndUp;
        this.gate = gate;
        this.up = up;
        this.down = down;
        this.experts = experts;
    }

    private FeedForward(BlockSpec.Mlp spec, Linear gateAndUp, Linear gate, Linear up, Linear down) {
        this(spec, gateAndUp, gate, up, down, null);
    }

    /** This MLP as the shared one beside routed experts (the spec names them). */
    public FeedForward withExperts(RoutedExperts routed) {
        if (!routed.spec().equals(spec.experts())) {
            throw new IllegalArgumentException(spec + " does not name the routed experts " + routed.spec());
        }
        return new FeedForward(spec, gateAndUp, gate, up, down, routed);
    }

    /** The routed experts beside this MLP, or null for a dense block. */
    public RoutedExperts experts() {
        return experts;
    }

    /** A gated-SiLU MLP whose gate and up rows are stacked in one matrix, gate first. */
    public static FeedForward gatedStacked(BlockSpec.Mlp spec, Linear gateAndUp, Linear down) {
        return new FeedForward(spec, gateAndUp, null, null, down);
    }

    /** A gated-SiLU MLP with separate gate and up matrices. */
    public static FeedForward gated(BlockSpec.Mlp spec, Linear gate, Linear up, Linear down) {
        return new FeedForward(spec, null, gate, up, down);
    }

    /** A squared-ReLU MLP. */
    public static FeedForward squaredRelu(BlockSpec.Mlp spec, Linear up, Linear down) {
        return new FeedForward(spec, null, null, up, down);
    }

    @Override
    public LayerState newState() {
        return null;
    }

    @Override
    public float[] forward(Ops ops, float[] x, Batch batch, int block) {
        return apply(ops, x, batch.rows());
    }

    /** x: [tokens, hidden] → [tokens, hidden]; each row on its own. */
    public float[] apply(Ops ops, float[] x, int tokens) {
        int width = spec.intermediateSize();
        float[] hidden = new float[tokens * width];
        if (spec.kind() == BlockSpec.MlpKind.SQUARED_RELU) {
            float[] projected = up.apply(ops, x, tokens);
            for (int i = 0; i < hidden.length; i++) {
                float r = Math.max(projected[i], 0f);
                hidden[i] = r * r;
            }
        } else if (gateAndUp != null) {
            float[] projected = gateAndUp.apply(ops, x, tokens);
            for (int t = 0; t < tokens; t++) {
                silu(projected, t * 2 * width, projected, t * 2 * width + width, hidden, t * width, width);
            }
        } else {
            silu(gate.apply(ops, x, tokens), 0, up.apply(ops, x, tokens), 0, hidden, 0, hidden.length);
        }
        float[] out = down.apply(ops, hidden, tokens);
        if (experts != null) {
            float[] routed = experts.apply(ops, x, tokens);
            for (int i = 0; i < out.length; i++) {
                out[i] = routed[i] + out[i];
            }
        }
        return out;
    }

    /** out[i] = silu(gate[i]) · up[i] over {@code length} elements at the given offsets. */
    private static void silu(float[] gate, int gateOffset, float[] up, int upOffset, float[] out, int outOffset,
            int length) {
        for (int i = 0; i < length; i++) {
            float g = gate[gateOffset + i];
            out[outOffset + i] = g / (1f + (float) Math.exp(-g)) * up[upOffset + i];
        }
    }

    public BlockSpec.Mlp spec() {
        return spec;
    }
}
