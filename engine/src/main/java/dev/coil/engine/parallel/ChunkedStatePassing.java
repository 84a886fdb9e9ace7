package dev.coil.engine.parallel;

import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.LayerState;
import dev.coil.engine.model.Mamba2Mixer;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.SsmShape;

/**
 * One Mamba-2 block over a prompt held by N devices. The prompt's chunks form a chain in sequence
 * order; every chunk is scanned at once on its device from a zero state, and then only the states
 * travel along the chain ({@link StatePassing}):
 * <pre>
 *   z | xBC | dt = in_proj(u)                        every device, its rows
 *   x | B | C   = silu(conv1d(xBC))                  each chunk starts from the last kernel-1 xBC rows
 *                                                    before it (the sequence's conv state for chunk 0)
 *   y_local, S_local(k) = SSD(x, dt, A, B, C; S = 0)  every chunk at once
 *   S_in(0) = the sequence's state;  S_in(k+1) = exp(Σ_k dt·A) · S_in(k) + S_local(k)    along the chain
 *   y_t = y_local_t + C_t · (exp(cum_t) · S_in(k))    every chunk at once
 *   out = out_proj(rmsnorm_grouped(y · silu(z)) · w)
 * </pre>
 * dt is clamped as for any prompt token, as {@link Mamba2Mixer} does; the state after the last
 * chunk is the sequence's state after the prompt.
 */
final class ChunkedStatePassing {

    private final Mamba2Mixer mixer;
    private final BlockSpec.Mamba spec;
    private final SsmShape shape;
    private final VirtualDevices devices;

    ChunkedStatePassing(Mamba2Mixer mixer, VirtualDevices devices) {
        this.mixer = mixer;
        this.spec = mixer.spec();
        this.shape = mixer.shape();
        this.devices = devices;
    }

    /** One chunk's scan from a zero state, waiting for its incoming state. */
    private static final class ChunkScan {
        int tokens;
        float[] c; // [tokens, groups, stateSize]
        float[] y; // [tokens, heads, headDim]: local, then corrected
        float[] cumulative; // [tokens, heads]: Σ_{s ≤ t} dt·A
        float[] localState; // [heads, headDim, stateSize]: S_local
    }

    /**
     * u[d] [rows(d), hidden]: the normalised rows of device d. Reads {@code state} as the
     * sequence's state before the prompt and leaves in it the state after. Returns the block's
     * output rows per device.
     */
    float[][] prefill(Sharding sharding, float[][] u, LayerState.Mamba state) {
        int n = devices.count();
        int chunks = sharding.chunkCount();
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int heads = spec.heads();
        int width = spec.projectionWidth();
        float[][] projected = new float[n][];
        float[][] convTails = new float[chunks][]; // each chunk's last (up to) kernel-1 xBC rows

        devices.forEach(d -> {
            projected[d] = mixer.inProjection().apply(devices.ops(d), u[d], sharding.rows(d));
            for (int chunk : sharding.chunksOf(d)) {
                int tail = Math.min(spec.convKernel() - 1, sharding.chunkLength(chunk));
                int last = sharding.firstRow(d, chunk) + sharding.chunkLength(chunk);
                convTails[chunk] = columns(projected[d], last - tail, tail, width, inner, channels);
            }
        });

        ChunkScan[] scans = new ChunkScan[chunks];
        devices.forEach(d -> {
            for (int chunk : sharding.chunksOf(d)) {
                scans[chunk] = scanFromZero(devices.ops(d), projected[d], sharding.firstRow(d, chunk),
                        sharding.chunkLength(chunk), convStateBefore(state.conv(), convTails, chunk));
            }
        });

        float[][] incoming = new float[chunks + 1][];
        incoming[0] = state.ssm().clone();
        for (int chunk = 0; chunk < chunks; chunk++) {
            ChunkScan scan = scans[chunk];
            float[] before = incoming[chunk];
            incoming[chunk + 1] = devices.on(sharding.owner(chunk), () -> StatePassing.pass(shape, before,
                    StatePassing.totalLogDecay(scan.tokens, heads, scan.cumulative), scan.localState));
        }

        float[][] update = new float[n][];
        devices.forEach(d -> {
            int rows = sharding.rows(d);
            float[] y = new float[rows * inner];
            for (int chunk : sharding.chunksOf(d)) {
                ChunkScan scan = scans[chunk];
                StatePassing.correct(devices.parallel(d), shape, scan.tokens, scan.cumulative, scan.c,
                        incoming[chunk], scan.y);
                System.arraycopy(scan.y, 0, y, sharding.firstRow(d, chunk) * inner, scan.y.length);
            }
            float[] z = columns(projected[d], 0, rows, width, 0, inner);
            Ops ops = devices.ops(d);
            ops.gatedRmsNorm(y, z, rows, inner, spec.normGroupSize(), mixer.normWeight(), spec.normEps(), y);
            update[d] = mixer.outProjection().apply(ops, y, rows);
        });

        System.arraycopy(convStateBefore(state.conv(), convTails, chunks), 0, state.conv(), 0, state.conv().length);
        System.arraycopy(incoming[chunks], 0, state.ssm(), 0, state.ssm().length);
        return update;
    }

    /** Conv, dt and the SSD scan of one chunk (rows [first, first + tokens) of its device) from a zero state. */
    private ChunkScan scanFromZero(Ops ops, float[] projected, int first, int tokens, float[] convState) {
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int heads = spec.heads();
        int width = spec.projectionWidth();
        int groupWidth = spec.groups() * spec.stateSize();
        ChunkScan scan = new ChunkScan();
        scan.tokens = tokens;
        scan.localState = new float[shape.stateFloats()];
        scan.y = new float[tokens * inner];
        if (tokens == 0) {
            scan.c = new float[0];
            scan.cumulative = new float[0];
            return scan;
        }
        float[] xbc = columns(projected, first, tokens, width, inner, channels);
        float[] convolved = new float[tokens * channels];
        ops.causalConv1d(xbc, tokens, channels, mixer.convWeight(), mixer.convBias(), spec.convKernel(), convState,
                convolved);
        float[] x = columns(convolved, 0, tokens, channels, 0, inner);
        float[] b = columns(convolved, 0, tokens, channels, inner, groupWidth);
        scan.c = columns(convolved, 0, tokens, channels, inner + groupWidth, groupWidth);

        float[] rawDt = columns(projected, first, tokens, width, spec.dtColumn(), heads);
        float[] dt = new float[tokens * heads];
        for (int i = 0; i < dt.length; i++) {
            float value = Mamba2Mixer.softplus(rawDt[i] + mixer.dtBias()[i % heads]);
            dt[i] = Math.min(Math.max(value, spec.dtMin()), spec.dtMax());
        }
        scan.cumulative = StatePassing.cumulativeLogDecay(tokens, heads, dt, mixer.decay());
        ops.ssdScan(shape, tokens, spec.chunkSize(), x, dt, mixer.decay(), b, scan.c, mixer.skip(), scan.localState,
                scan.y);
        return scan;
    }

    /**
     * The conv state entering chunk k: the last kernel-1 pre-conv rows before it, [kernel-1, channels],
     * oldest first; from the sequence's conv state and the tails of chunks 0 .. k-1 (a tail holds
     * fewer rows when its chunk is shorter than the kernel).
     */
    private float[] convStateBefore(float[] initial, float[][] tails, int chunk) {
        int channels = spec.convChannels();
        int rows = spec.convKernel() - 1;
        float[] window = initial.clone();
        for (int k = 0; k < chunk; k++) {
            int count = tails[k].length / channels;
            if (count == 0) {
                continue;
            }
            float[] shifted = new float[window.length];
            int kept = rows - count;
            System.arraycopy(window, count * channels, shifted, 0, kept * channels);
            System.arraycopy(tails[k], 0, shifted, kept * channels, count * channels);
            window = shifted;
        }
        return window;
    }

    /** Columns [start, start + count) of rows [firstRow, firstRow + rows) of a row-major [*, width] array. */
    private static float[] columns(float[] source, int firstRow, int rows, int width, int start, int count) {
        float[] out = new float[rows * count];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(source, (firstRow + r) * width + start, out, r * count, count);
        }
        return out;
    }
}
