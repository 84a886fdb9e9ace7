package dev.coil.engine.parallel;

import dev.coil.engine.model.AttentionMixer;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.Ops;
import java.util.Arrays;
import java.util.concurrent.Future;

/**
 * One attention block over a context held by N devices (ring attention, Liu et al. 2023). Each
 * device computes q, k, v for its own rows (RoPE at their global positions) and keeps its k, v as
 * its shard. Then, for N steps, every device attends its queries to the shard it holds, with the
 * causal mask by global positions, and meanwhile passes that shard on to the next device; after
 * N steps every query has seen every key once. The partial results combine by their log-sum-exps:
 * <pre>
 *   lse = log Σ_s exp(lse_s),   out = Σ_s exp(lse_s − lse) · out_s
 * </pre>
 */
final class RingAttention {

    private final AttentionMixer mixer;
    private final BlockSpec.Attention spec;
    private final AttentionShape shape;
    private final VirtualDevices devices;

    RingAttention(AttentionMixer mixer, VirtualDevices devices) {
        this.mixer = mixer;
        this.spec = mixer.spec();
        this.shape = mixer.shape();
        this.devices = devices;
    }

    /**
     * The prompt: x[d] [rows(d), hidden] the normalised rows of device d; appends each device's k, v
     * to its shard {@code own[d]}; returns the block's output rows per device.
     */
    float[][] prefill(Sharding sharding, float[][] x, KeyValueShard[] own) {
        int n = devices.count();
        int heads = shape.queryHeads();
        float[][] q = new float[n][];
        float[][] out = new float[n][];
        float[][] lse = new float[n][];
        KeyValueShard[][] receive = new KeyValueShard[2][n]; // double buffer: one is read while the other fills
        devices.forEach(d -> {
            int rows = sharding.rows(d);
            Ops ops = devices.ops(d);
            q[d] = mixer.query().apply(ops, x[d], rows);
            float[] k = mixer.key().apply(ops, x[d], rows);
            float[] v = mixer.value().apply(ops, x[d], rows);
            rotate(ops, sharding, d, q[d], k);
            own[d].append(k, v, sharding.positions(d), rows);
            out[d] = new float[rows * heads * shape.headDim()];
            lse[d] = new float[rows * heads];
            Arrays.fill(lse[d], Float.NEGATIVE_INFINITY);
            int width = shape.kvHeads() * shape.headDim();
            receive[0][d] = new KeyValueShard(width, sharding.maxRows());
            receive[1][d] = new KeyValueShard(width, sharding.maxRows());
        });

        KeyValueShard[] held = own;
        for (int step = 0; step < n; step++) {
            KeyValueShard[] holding = held;
            KeyValueShard[] incoming = receive[step % 2];
            boolean passOn = step < n - 1;
            devices.forEach(d -> {
                Future<?> send = passOn ? devices.send(d, () -> holding[d].copyInto(incoming[devices.next(d)])) : null;
                accumulate(d, sharding.positions(d), q[d], holding[d], out[d], lse[d]);
                if (send != null) {
                    VirtualDevices.await(send);
                }
            });
            held = incoming;
        }

        float[][] update = new float[n][];
        devices.forEach(d -> update[d] = mixer.output().apply(devices.ops(d), out[d], sharding.rows(d)));
        return update;
    }

    /**
     * One generated token at {@code position}: x [1, hidden] on the state device, whose shard
     * receives its k, v; every device attends the query to its shard, the partials merge on the
     * state device. Returns the block's output row [hidden].
     */
    float[] decode(float[] x, int position, KeyValueShard[] shards, int stateDevice) {
        int[] positions = {position};
        float[] q = devices.on(stateDevice, () -> {
            Ops ops = devices.ops(stateDevice);
            float[] query = mixer.query().apply(ops, x, 1);
            float[] k = mixer.key().apply(ops, x, 1);
            float[] v = mixer.value().apply(ops, x, 1);
            if (spec.rotaryDim() > 0) {
                ops.rope(query, 1, spec.queryHeads(), spec.headDim(), spec.rotaryDim(), spec.ropeTheta(), position);
                ops.rope(k, 1, spec.kvHeads(), spec.headDim(), spec.rotaryDim(), spec.ropeTheta(), position);
            }
            shards[stateDevice].append(k, v, positions, 1);
            return query;
        });
        int n = devices.count();
        float[][] out = new float[n][shape.queryHeads() * shape.headDim()];
        float[][] lse = new float[n][shape.queryHeads()];
        devices.forEach(d -> {
            Arrays.fill(lse[d], Float.NEGATIVE_INFINITY);
            accumulate(d, positions, q.clone(), shards[d], out[d], lse[d]);
        });
        return devices.on(stateDevice, () -> {
            for (int d = 0; d < n; d++) {
                if (d != stateDevice) {
                    PartialAttention.merge(shape.queryHeads(), shape.headDim(), out[stateDevice], lse[stateDevice],
                            out[d], lse[d]);
                }
            }
            return mixer.output().apply(devices.ops(stateDevice), out[stateDevice], 1);
        });
    }

    /** Device d attends its queries to one shard and folds the partial result into (out, lse). */
    private void accumulate(int d, int[] queryPositions, float[] q, KeyValueShard shard, float[] out, float[] lse) {
        int queries = queryPositions.length;
        if (queries == 0 || shard.length() == 0) {
            return;
        }
        float[] partialOut = new float[out.length];
        float[] partialLse = new float[lse.length];
        PartialAttention.attend(devices.parallel(d), shape, spec.scale(), q, queryPositions, queries, shard.keys(),
                shard.values(), shard.positions(), shard.length(), partialOut, partialLse);
        PartialAttention.merge(queries * shape.queryHeads(), shape.headDim(), out, lse, partialOut, partialLse);
    }

    /** RoPE on device d's rows, chunk by chunk, each at its global positions. */
    private void rotate(Ops ops, Sharding sharding, int d, float[] q, float[] k) {
        if (spec.rotaryDim() == 0) {
            return;
        }
        for (int chunk : sharding.chunksOf(d)) {
            int first = sharding.firstRow(d, chunk);
            int count = sharding.chunkLength(chunk);
            if (count > 0) {
                rotateRows(ops, q, first, count, spec.queryHeads(), sharding.chunkStart(chunk));
                rotateRows(ops, k, first, count, spec.kvHeads(), sharding.chunkStart(chunk));
            }
        }
    }

    private void rotateRows(Ops ops, float[] rows, int first, int count, int heads, int position) {
        int width = heads * spec.headDim();
        float[] slice = Arrays.copyOfRange(rows, first * width, (first + count) * width);
        ops.rope(slice, count, heads, spec.headDim(), spec.rotaryDim(), spec.ropeTheta(), position);
        System.arraycopy(slice, 0, rows, first * width, slice.length);
    }
}
