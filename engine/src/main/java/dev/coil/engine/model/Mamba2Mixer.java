package dev.coil.engine.model;

import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.SsmShape;

/**
 * The Mamba-2 mixer (Dao & Gu 2024), as HF's torch path computes it:
 * <pre>
 *   z | xBC | dt = in_proj(u)                          z: [T, I], xBC: [T, I + 2GN], dt: [T, nh]
 *   x | B | C   = silu(causal_conv1d(xBC))             conv state carries the last K-1 inputs
 *   dt          = softplus(dt + dt_bias)               clamped to [dtMin, dtMax] for prompt tokens only
 *   y           = SSM(x, dt, A = -exp(A_log), B, C) + D·x
 *   out         = out_proj(rmsnorm_grouped(y · silu(z)) · w)
 * </pre>
 * in_proj runs as one matrix product over every row of the batch (one pass over its weights), whose
 * columns are then split; the conv and the scan run per sequence, on that sequence's state. A
 * segment of one generated token takes the recurrence step, anything else the chunked SSD scan.
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

    public SsmShape shape() {
        return shape;
    }

    /** in_proj [inner + convChannels + heads, hidden]: output columns z | xBC | dt. */
    public Linear inProjection() {
        return inProjection;
    }

    /** [convChannels, kernel]. */
    public float[] convWeight() {
        return convWeight;
    }

    /** [convChannels] or null. */
    public float[] convBias() {
        return convBias;
    }

    /** [heads]. */
    public float[] dtBias() {
        return dtBias;
    }

    /** A = -exp(A_log): [heads]. */
    public float[] decay() {
        return decay;
    }

    /** D: [heads]. */
    public float[] skip() {
        return skip;
    }

    /** The gated norm's weight [inner]. */
    public float[] normWeight() {
        return normWeight;
    }

    public Linear outProjection() {
        return outProjection;
    }

    @Override
    public LayerState.Mamba newState() {
        return new LayerState.Mamba(new float[(spec.convKernel() - 1) * spec.convChannels()],
                new float[shape.stateFloats()]);
    }

    @Override
    public float[] forward(Ops ops, float[] u, Batch batch, int block) {
        int rows = batch.rows();
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int heads = spec.heads();
        int groupWidth = spec.groups() * spec.stateSize();

        int width = spec.projectionWidth();
        float[] projected = inProjection.apply(ops, u, rows);
        float[] z = columns(projected, rows, width, 0, inner);
        float[] xbc = columns(projected, rows, width, inner, channels);
        float[] dt = columns(projected, rows, width, spec.dtColumn(), heads);

        float[] y = new float[rows * inner];
        for (int s = 0; s < batch.size(); s++) {
            int first = batch.firstRow(s);
            int tokens = batch.tokens(s);
            int clamped = batch.segment(s).clampedTokens();
            LayerState.Mamba state = (LayerState.Mamba) batch.state(s, block);

            float[] convolved = new float[tokens * channels];
            ops.causalConv1d(AttentionMixer.rowSlice(xbc, first, tokens, channels), tokens, channels, convWeight,
                    convBias, spec.convKernel(), state.conv(), convolved);
            float[] x = columns(convolved, tokens, channels, 0, inner);
            float[] b = columns(convolved, tokens, channels, inner, groupWidth);
            float[] c = columns(convolved, tokens, channels, inner + groupWidth, groupWidth);

            float[] segmentDt = new float[tokens * heads];
            for (int t = 0; t < tokens; t++) {
                for (int h = 0; h < heads; h++) {
                    float value = softplus(dt[(first + t) * heads + h] + dtBias[h]);
                    if (t < clamped) {
                        value = Math.min(Math.max(value, spec.dtMin()), spec.dtMax());
                    }
                    segmentDt[t * heads + h] = value;
                }
            }

            float[] segmentY = new float[tokens * inner];
            if (tokens == 1 && clamped == 0) {
                ops.ssmStep(shape, x, segmentDt, decay, b, c, skip, state.ssm(), segmentY);
            } else {
                ops.ssdScan(shape, tokens, spec.chunkSize(), x, segmentDt, decay, b, c, skip, state.ssm(), segmentY);
            }
            System.arraycopy(segmentY, 0, y, first * inner, segmentY.length);
        }
        ops.gatedRmsNorm(y, z, rows, inner, spec.normGroupSize(), normWeight, spec.normEps(), y);
        return outProjection.apply(ops, y, rows);
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
    public static float softplus(float value) {
        return value > 20f ? value : (float) Math.log1p(Math.exp(value));
    }
}
