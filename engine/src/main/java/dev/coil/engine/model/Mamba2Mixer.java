package dev.coil.engine.model;

import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.SsmShape;

/**
 * The Mamba-2 mixer (Dao & Gu 2024), as HF's torch path computes it:
 * <pre>
 *   z | xBC | dt = in_proj(u)                          z: [T, I], xBC: [T, I + 2GN], dt: [T, nh]
 *   x | B | C   = silu(causal_conv1d(xBC))             conv state carries the last K-1 inputs
 *   dt          = softplus(dt + dt_bias)               clamped to [dtMin, dtMax] in prefill only
 *   y           = SSM(x, dt, A = -exp(A_log), B, C) + D·x
 *   out         = out_proj(rmsnorm_grouped(y · silu(z)) · w)
 * </pre>
 * in_proj runs as one matrix product (one pass over its weights), whose columns are then split.
 */
public final class Mamba2Mixer implements Mixer {

    private final BlockSpec.Mamba spec;
    private final SsmShape shape;
    private final Linear inProjection; // [inner + convChannels + heads, hidden]: z | xBC | dt
    private final float[] convWeight; // [convChannels, kernel]
    private final float[] convBias; // [convChannels] or null
    private final float[] dtBias; // [heads]
    private final float[] decay; // A = -exp(A_log): [heads]
    private final float[] skip; // D: [heads]
    private final float[] normWeight; // [inner]
    private final Linear outProjection;

    public Mamba2Mixer(BlockSpec.Mamba spec, Linear inProjection, float[] convWeight, float[] convBias,
            float[] dtBias, float[] aLog, float[] skip, float[] normWeight, Linear outProjection) {
        this.spec = spec;
        this.shape = new SsmShape(spec.heads(), spec.headDim(), spec.groups(), spec.stateSize());
        this.inProjection = inProjection;
        this.convWeight = convWeight;
        this.convBias = convBias;
        this.dtBias = dtBias;
        this.decay = new float[aLog.length];
        for (int h = 0; h < aLog.length; h++) {
            decay[h] = (float) -Math.exp(aLog[h]);
        }
        this.skip = skip;
        this.normWeight = normWeight;
        this.outProjection = outProjection;
    }

    public BlockSpec.Mamba spec() {
        return spec;
    }

    @Override
    public LayerState.Mamba newState() {
        return new LayerState.Mamba(new float[(spec.convKernel() - 1) * spec.convChannels()],
                new float[shape.stateFloats()]);
    }

    @Override
    public float[] forward(Ops ops, float[] u, int tokens, int past, Phase phase, LayerState state) {
        LayerState.Mamba mambaState = (LayerState.Mamba) state;
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int groupWidth = spec.groups() * spec.stateSize();

        int heads = spec.heads();
        int width = inner + channels + heads;
        float[] projected = inProjection.apply(ops, u, tokens);
        float[] z = columns(projected, tokens, width, 0, inner);
        float[] xbc = columns(projected, tokens, width, inner, channels);
        float[] dt = columns(projected, tokens, width, inner + channels, heads);

        float[] convolved = new float[tokens * channels];
        ops.causalConv1d(xbc, tokens, channels, convWeight, convBias, spec.convKernel(), mambaState.conv(), convolved);
        float[] x = columns(convolved, tokens, channels, 0, inner);
        float[] b = columns(convolved, tokens, channels, inner, groupWidth);
        float[] c = columns(convolved, tokens, channels, inner + groupWidth, groupWidth);

        boolean clamp = phase == Phase.PREFILL;
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < spec.heads(); h++) {
                float value = softplus(dt[t * spec.heads() + h] + dtBias[h]);
                if (clamp) {
                    value = Math.min(Math.max(value, spec.dtMin()), spec.dtMax());
                }
                dt[t * spec.heads() + h] = value;
            }
        }

        float[] y = new float[tokens * inner];
        if (phase == Phase.DECODE && tokens == 1) {
            ops.ssmStep(shape, x, dt, decay, b, c, skip, mambaState.ssm(), y);
        } else {
            ops.ssdScan(shape, tokens, spec.chunkSize(), x, dt, decay, b, c, skip, mambaState.ssm(), y);
        }
        ops.gatedRmsNorm(y, z, tokens, inner, spec.normGroupSize(), normWeight, spec.normEps(), y);
        return outProjection.apply(ops, y, tokens);
    }

    /** Columns [start, start + count) of a [tokens, width] row-major array, as a [tokens, count] array. */
    private static float[] columns(float[] rows, int tokens, int width, int start, int count) {
        float[] out = new float[tokens * count];
        for (int t = 0; t < tokens; t++) {
            System.arraycopy(rows, t * width + start, out, t * count, count);
        }
        return out;
    }

    /** torch's softplus: beta 1, linear above 20. */
    static float softplus(float value) {
        return value > 20f ? value : (float) Math.log1p(Math.exp(value));
    }
}
