package dev.coil.engine.model;

import dev.coil.engine.ops.Ops;

/** The MLP blocks: gated SiLU (Granite, Bamba) or squared ReLU (NemotronH). gate is null for the latter. */
public final class FeedForward implements Mixer {

    private final BlockSpec.Mlp spec;
    private final Linear gate;
    private final Linear up;
    private final Linear down;

    public FeedForward(BlockSpec.Mlp spec, Linear gate, Linear up, Linear down) {
        this.spec = spec;
        this.gate = gate;
        this.up = up;
        this.down = down;
    }

    @Override
    public LayerState newState() {
        return null;
    }

    @Override
    public float[] forward(Ops ops, float[] x, int tokens, int past, Phase phase, LayerState state) {
        float[] hidden = up.apply(ops, x, tokens);
        if (gate != null) {
            float[] gateValues = gate.apply(ops, x, tokens);
            for (int i = 0; i < hidden.length; i++) {
                float g = gateValues[i];
                hidden[i] *= g / (1f + (float) Math.exp(-g));
            }
        } else {
            for (int i = 0; i < hidden.length; i++) {
                float r = Math.max(hidden[i], 0f);
                hidden[i] = r * r;
            }
        }
        return down.apply(ops, hidden, tokens);
    }

    public BlockSpec.Mlp spec() {
        return spec;
    }
}
