package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.parallel.Sharding;
import java.util.List;

/**
 * An attention block over a sharded sequence, by ring attention. Each GPU projects its own rows,
 * rotates q and k at their global positions and keeps its K/V shard (bf16, the head dim padded as
 * the kernels compile it). Then in N steps each GPU attends its queries to one shard: its own
 * first, then its neighbours' at distance 1, 2, … , each arriving on the copy stream while the
 * previous step computes. Chunk against chunk, a key chunk before the query chunk is attended in
 * full, the same chunk causally, a later one not at all; partial results merge by their
 * log-sum-exp. Decode: the new token's query visits every GPU's shard and the partials merge on
 * the GPU that decodes.
 */
final class RingAttentionBlock {

    private RingAttentionBlock() {
    }

    /** The device's rows' keys and values of one attention block: [capacity, kvHeads, paddedHeadDim] bf16 each. */
    record Shard(DeviceBuffer keys, DeviceBuffer values, int capacity) implements AutoCloseable {

        @Override
        public void close() {
            keys.close();
            values.close();
        }
    }

    /** inputs[d]: block-normed rows of device d → updates[d] = o_proj(attention), [rows(d), hidden]. */
    static void prefill(GpuShardedRun run, int block, StepInput[] inputs, DeviceBuffer[] updates,
            RingTimings.Recorder timing) {
        RingDevice[] devices = run.devices();
        Sharding sharding = run.sharding();
        int n = devices.length;
        GpuWeights.Attention w = (GpuWeights.Attention) devices[0].weights.blocks.get(block).mixer();
        BlockSpec.Attention spec = w.spec();
        int padded = StepAttention.paddedHeadDim(spec.headDim());
        AttentionShape shape = new AttentionShape(spec.queryHeads(), spec.kvHeads(), padded);
        long kvRowBytes = 2L * spec.kvHeads() * padded;

        for (RingDevice device : run.withRows()) {
            int rows = sharding.rows(device.index);
            device.use();
            GpuWeights.Attention weights = (GpuWeights.Attention) device.weights.blocks.get(block).mixer();
            Shard shard = run.shard(device.index, block);
            DeviceBuffer q16 = projectRows(device, weights, inputs[device.index], rows, run.positions(device.index),
                    -1, shard, 0);
            run.setQuery(device.index, q16);
            device.mark("ring.kv");
        }

        // Queued step by step across the GPUs, not GPU by GPU: queued GPU by GPU on four GPUs, the third
        // and fourth GPUs' first copies took about as long as their sources' first two attention steps,
        // as if a peer copy waited behind copies queued earlier that read the same GPU. So no GPU's
        // copy for step s is queued after another GPU's copies for later steps.
        long recvBytes = sharding.maxRows() * kvRowBytes;
        List<RingDevice> holding = run.withRows();
        DeviceBuffer[][] received = new DeviceBuffer[n][2];
        CudaEvent[][] arrived = new CudaEvent[n][n];
        DeviceBuffer[] out = new DeviceBuffer[n];
        DeviceBuffer[] lse = new DeviceBuffer[n];
        boolean[][] written = new boolean[n][];
        for (RingDevice device : holding) {
            int d = device.index;
            int rows = sharding.rows(d);
            device.use();
            out[d] = device.kernels.scratch.floats("ring.out", (long) rows * shape.queryHeads() * padded);
            lse[d] = device.kernels.scratch.floats("ring.lse", (long) rows * shape.queryHeads());
            written[d] = new boolean[sharding.chunksOf(d).length];
            for (int slot = 0; slot < 2 && n > 1; slot++) {
                received[d][slot] = device.kernels.scratch.bytes("ring.received." + slot, 2 * recvBytes);
            }
            if (n > 1) {
                arrived[d][1] = fetch(run, block, device, 1, received[d][1], kvRowBytes, timing);
            }
        }
        for (int step = 0; step < n; step++) {
            for (RingDevice device : holding) {
                int d = device.index;
                device.use();
                CudaStream stream = device.stream();
                if (step + 1 < n && step + 1 > 1) {
                    arrived[d][step + 1] = fetch(run, block, device, step + 1, received[d][(step + 1) % 2],
                            kvRowBytes, timing);
                }
                int source = Math.floorMod(d - step, n);
                int sourceRows = sharding.rows(source);
                if (step > 0) {
                    stream.waitFor(arrived[d][step]);
                }
                CudaEvent start = timing == null ? null : device.stamp(stream);
                if (sourceRows > 0) {
                    DeviceBuffer keys;
                    DeviceBuffer values;
                    if (step == 0) {
                        keys = run.shard(d, block).keys();
                        values = run.shard(d, block).values();
                    } else {
                        keys = received[d][step % 2].slice(0, sourceRows * kvRowBytes);
                        values = received[d][step % 2].slice(recvBytes, sourceRows * kvRowBytes);
                    }
                    attendStep(device, sharding, spec, shape, sharding.chunksOf(d), written[d], source,
                            run.query(d), keys, values, out[d], lse[d]);
                }
                if (timing != null) {
                    timing.compute(d, step, start, device.stamp(stream));
                }
            }
        }
        for (RingDevice device : holding) {
            int d = device.index;
            device.use();
            DeviceBuffer merged = unpad(device, out[d], sharding.rows(d), spec.queryHeads(), spec.headDim(), padded);
            device.kernels.matmul.matmul(device.stream(), merged, sharding.rows(d),
                    ((GpuWeights.Attention) device.weights.blocks.get(block).mixer()).output(), updates[d]);
        }
    }

    /**
     * Queues on {@code device}'s copy stream the K/V shard of its neighbour at distance
     * {@code step} into {@code into} (keys, then values at half its size), after that neighbour has
     * written it and after the attention step that last read {@code into} here. Returns the event
     * that marks its arrival.
     */
    private static CudaEvent fetch(GpuShardedRun run, int block, RingDevice device, int step, DeviceBuffer into,
            long kvRowBytes, RingTimings.Recorder timing) {
        RingDevice[] devices = run.devices();
        int n = devices.length;
        RingDevice source = devices[Math.floorMod(device.index - step, n)];
        int rows = run.sharding().rows(source.index);
        long half = into.bytes() / 2;
        CudaStream copies = device.copies;
        // The last attention step queued here (two before this one) read the same buffer.
        copies.waitFor(device.mark("ring.reading", device.stream()));
        if (rows > 0) {
            copies.waitFor(source.event("ring.kv"));
        }
        CudaEvent start = timing == null ? null : device.stamp(copies);
        if (rows > 0) {
            Shard shard = run.shard(source.index, block);
            device.pull(copies, into, source, shard.keys(), rows * kvRowBytes, null);
            device.pull(copies, into.slice(half, half), source, shard.values(), rows * kvRowBytes, null);
        }
        if (timing != null) {
            timing.copy(device.index, step, start, device.stamp(copies));
        }
        return device.mark("ring.arrived." + step, copies);
    }

    /**
     * One ring step on a device: each of its query chunks against each chunk of the shard in hand
     * (from device {@code source}): earlier chunks in full, the same chunk causally, later ones
     * skipped; the first result of a query chunk is written in place, later ones merged into it.
     */
    private static void attendStep(RingDevice device, Sharding sharding, BlockSpec.Attention spec,
            AttentionShape shape, int[] queryChunks, boolean[] written, int source, DeviceBuffer q16,
            DeviceBuffer keys, DeviceBuffer values, DeviceBuffer out, DeviceBuffer lse) {
        CudaStream stream = device.stream();
        int d = device.index;
        int padded = shape.headDim();
        int heads = shape.queryHeads();
        long qRowBytes = 2L * heads * padded;
        long kvRowBytes = 2L * shape.kvHeads() * padded;
        for (int q = 0; q < queryChunks.length; q++) {
            int queryChunk = queryChunks[q];
            int queryRows = sharding.chunkLength(queryChunk);
            if (queryRows == 0) {
                continue;
            }
            int queryRow = sharding.firstRow(d, queryChunk);
            for (int keyChunk : sharding.chunksOf(source)) {
                int keyRows = sharding.chunkLength(keyChunk);
                if (keyChunk > queryChunk || keyRows == 0) {
                    continue;
                }
                int keyRow = sharding.firstRow(source, keyChunk);
                boolean causal = keyChunk == queryChunk;
                long rowFloats = (long) heads * padded;
                DeviceBuffer target = out.floatSlice(queryRow * rowFloats, queryRows * rowFloats);
                DeviceBuffer targetLse = lse.floatSlice((long) queryRow * heads, (long) queryRows * heads);
                DeviceBuffer part = written[q]
                        ? device.kernels.scratch.floats("ring.part", queryRows * rowFloats) : target;
                DeviceBuffer partLse = written[q]
                        ? device.kernels.scratch.floats("ring.partLse", (long) queryRows * heads) : targetLse;
                device.kernels.flashAttention.launchPartial(stream, shape, queryRows, keyRows, 0, spec.scale(), causal,
                        q16.slice(queryRow * qRowBytes, queryRows * qRowBytes),
                        keys.slice(keyRow * kvRowBytes, keyRows * kvRowBytes),
                        values.slice(keyRow * kvRowBytes, keyRows * kvRowBytes), part, partLse);
                if (written[q]) {
                    device.parallel.merge(stream, target, targetLse, part, partLse, queryRows * heads, padded);
                }
                written[q] = true;
            }
        }
    }

    /**
     * One generated token at position run.length() on the GPU that decodes: its q, k and v; its k
     * and v join that GPU's shard; its query visits every GPU's shard (all positions before it, and
     * itself) and the partial results merge there. update = o_proj(attention), [1, hidden].
     */
    static void decode(GpuShardedRun run, int block, StepInput input, DeviceBuffer update) {
        RingDevice[] devices = run.devices();
        Sharding sharding = run.sharding();
        RingDevice home = devices[run.stateDevice()];
        GpuWeights.Attention w = (GpuWeights.Attention) home.weights.blocks.get(block).mixer();
        BlockSpec.Attention spec = w.spec();
        int padded = StepAttention.paddedHeadDim(spec.headDim());
        AttentionShape shape = new AttentionShape(spec.queryHeads(), spec.kvHeads(), padded);
        int heads = spec.queryHeads();
        long rowFloats = (long) heads * padded;

        home.use();
        int held = run.homeShardRows();
        Shard shard = run.shardWithRoom(home.index, block, held + 1);
        DeviceBuffer q16 = projectRows(home, w, input, 1, null, run.length(), shard, held);
        CudaEvent asked = home.mark("ring.decode-query");
        for (RingDevice device : devices) {
            int rows = sharding.rows(device.index);
            if (device == home || rows == 0) {
                continue;
            }
            device.use();
            DeviceKernels k = device.kernels;
            DeviceBuffer query = k.scratch.bytes("ring.decode-q16", 2 * rowFloats);
            device.pull(k.stream, query, home, q16, 2 * rowFloats, asked);
            Shard theirs = run.shard(device.index, block);
            k.flashAttention.launchPartial(k.stream, shape, 1, rows, 0, spec.scale(), false, query, theirs.keys(),
                    theirs.values(), k.scratch.floats("ring.decode-out", rowFloats),
                    k.scratch.floats("ring.decode-lse", heads));
            device.mark("ring.decode-part");
        }
        home.use();
        DeviceKernels k = home.kernels;
        DeviceBuffer out = k.scratch.floats("ring.out", rowFloats);
        DeviceBuffer lse = k.scratch.floats("ring.lse", heads);
        k.flashAttention.launchPartial(k.stream, shape, 1, held + 1, 0, spec.scale(), false, q16, shard.keys(),
                shard.values(), out, lse);
        for (RingDevice device : devices) {
            if (device == home || sharding.rows(device.index) == 0) {
                continue;
            }
            DeviceBuffer part = k.scratch.floats("ring.part", rowFloats);
            DeviceBuffer partLse = k.scratch.floats("ring.partLse", heads);
            home.pull(k.stream, part, device, device.kernels.scratch.floats("ring.decode-out", rowFloats),
                    4 * rowFloats, device.event("ring.decode-part"));
            home.pull(k.stream, partLse, device, device.kernels.scratch.floats("ring.decode-lse", heads), 4L * heads,
                    null);
            home.parallel.merge(k.stream, out, lse, part, partLse, heads, padded);
        }
        DeviceBuffer merged = unpad(home, out, 1, heads, spec.headDim(), padded);
        k.matmul.matmul(k.stream, merged, 1, w.output(), update);
    }

    /**
     * q, k, v = x·Wᵀ for {@code rows} rows, rotated at their positions (a device buffer of int32, or
     * {@code position} ≥ 0 for one row), k and v written as bf16 into the shard from row
     * {@code shardRow}; returns q as bf16 [rows, queryHeads, padded] in scratch.
     */
    static DeviceBuffer projectRows(RingDevice device, GpuWeights.Attention w, StepInput x, int rows,
            DeviceBuffer positions, int position, Shard shard, int shardRow) {
        DeviceKernels k = device.kernels;
        BlockSpec.Attention spec = w.spec();
        int headDim = spec.headDim();
        int padded = StepAttention.paddedHeadDim(headDim);
        DeviceBuffer q = k.scratch.floats("attention.q", (long) rows * spec.queryHeads() * headDim);
        DeviceBuffer key = k.scratch.floats("attention.k", (long) rows * spec.kvHeads() * headDim);
        DeviceBuffer value = k.scratch.floats("attention.v", (long) rows * spec.kvHeads() * headDim);
        x.projectAll(k, rows, new GemvKernel.Product(w.query(), q), new GemvKernel.Product(w.key(), key),
                new GemvKernel.Product(w.value(), value));
        if (spec.rotaryDim() > 0) {
            if (positions != null) {
                k.rope.launchAtPositions(k.stream, q, positions, rows, spec.queryHeads(), headDim, spec.rotaryDim(),
                        spec.ropeTheta());
                k.rope.launchAtPositions(k.stream, key, positions, rows, spec.kvHeads(), headDim, spec.rotaryDim(),
                        spec.ropeTheta());
            } else {
                k.rope.launch(k.stream, q, rows, spec.queryHeads(), headDim, spec.rotaryDim(), spec.ropeTheta(),
                        position);
                k.rope.launch(k.stream, key, rows, spec.kvHeads(), headDim, spec.rotaryDim(), spec.ropeTheta(),
                        position);
            }
        }
        long kvRowBytes = 2L * spec.kvHeads() * padded;
        toBf16(device, key, rows * spec.kvHeads(), headDim, padded,
                shard.keys().slice(shardRow * kvRowBytes, rows * kvRowBytes));
        toBf16(device, value, rows * spec.kvHeads(), headDim, padded,
                shard.values().slice(shardRow * kvRowBytes, rows * kvRowBytes));
        DeviceBuffer q16 = k.scratch.bytes("ring.q16", 2L * rows * spec.queryHeads() * padded);
        toBf16(device, q, rows * spec.queryHeads(), headDim, padded, q16);
        return q16;
    }

    /** Head vectors [vectors, headDim] f32 → [vectors, padded] bf16, zero-padded. */
    private static void toBf16(RingDevice device, DeviceBuffer x, int vectors, int headDim, int padded,
            DeviceBuffer out) {
        DeviceKernels k = device.kernels;
        DeviceBuffer source = x;
        if (padded != headDim) {
            source = k.scratch.floats("ring.padded", (long) vectors * padded);
            source.fillAsync(0, k.stream);
            DeviceCopy.rows(k.stream, x, headDim, 0, source, padded, 0, vectors, headDim);
        }
        k.convert.launch(k.stream, source, (long) vectors * padded, DType.BF16, out);
    }

    /** [rows, heads, padded] f32 → [rows, heads, headDim], dropping the padding columns. */
    static DeviceBuffer unpad(RingDevice device, DeviceBuffer out, int rows, int heads, int headDim, int padded) {
        if (padded == headDim) {
            return out;
        }
        DeviceBuffer merged = device.kernels.scratch.floats("ring.merged", (long) rows * heads * headDim);
        DeviceCopy.rows(device.stream(), out, padded, 0, merged, headDim, 0, rows * heads, headDim);
        return merged;
    }
}
