package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.parallel.ShardLayout;
import dev.coil.engine.parallel.ShardedRun;
import dev.coil.engine.parallel.Sharding;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * One sequence sharded over the GPUs of a {@link GpuShardedModel}, {@code HybridModel}'s forward
 * with the prompt's rows spread over them:
 * <pre>
 *   h = E[ids] · embeddingMultiplier                       (each GPU its own rows)
 *   for each block:  h = h + mixer(rmsnorm(h)) · residualMultiplier
 *       attention: ring attention ({@link RingAttentionBlock}); Mamba-2: states chained along
 *       the chunks ({@link RingMambaBlock}); MLP: each GPU's rows alone
 *   logits = lm_head(rmsnorm_final(h[last])) / logitsDivisor
 * </pre>
 * Generated tokens run on the GPU that holds the prompt's last chunk (and so the Mamba states); their
 * K/V join its shard.
 */
final class GpuShardedRun implements ShardedRun {

    private final GpuShardedModel model;
    private final ShardLayout layout;
    private final RingDevice[] devices;
    private final ModelConfig config;
    private final List<List<AutoCloseable>> owned = new ArrayList<>(); // per device
    private Sharding sharding;
    private DeviceBuffer[] positions; // per device: its rows' global positions, int32
    private DeviceBuffer[] queries; // per device: the current attention block's q, bf16
    private RingAttentionBlock.Shard[][] shards; // [device][block]
    private DeviceBuffer[][] convOutboxes; // [device][block]: last inputs of each of its chunks
    private DeviceBuffer[][] chainOutboxes; // [block][chunk]: the state leaving the chunk, on its owner
    private DeviceBuffer[] convStates; // [block], on the state device
    private DeviceBuffer[] ssmStates; // [block], on the state device
    private DeviceBuffer slotZero;
    private int length;
    private int generated;
    private boolean closed;

    GpuShardedRun(GpuShardedModel model, ShardLayout layout) {
        this.model = model;
        this.layout = layout;
        this.devices = model.devices();
        this.config = model.config();
        for (int d = 0; d < devices.length; d++) {
            owned.add(new ArrayList<>());
        }
    }

    @Override
    public Sharding sharding() {
        if (sharding == null) {
            throw new IllegalStateException("a sequence is laid out by its prefill; prefill it first");
        }
        return sharding;
    }

    @Override
    public float[] prefill(int[] prompt) {
        return lastLogits(prefillHidden(prompt, null));
    }

    /** The prompt through every block; returns each device's final hidden rows (before the final norm). */
    DeviceBuffer[] prefillHidden(int[] prompt, RingTimings.Recorder timing) {
        requireOpen();
        if (sharding != null) {
            throw new IllegalStateException("a sharded sequence is prefilled once; this one already holds "
                    + length + " tokens");
        }
        model.checkIds(prompt);
        long hostStart = System.nanoTime();
        sharding = new Sharding(layout, devices.length, prompt.length);
        allocate();
        if (timing != null) {
            timing.host("allocate the sequence's buffers", System.nanoTime() - hostStart);
            hostStart = System.nanoTime();
        }
        CudaEvent[] prefillStart = new CudaEvent[devices.length];
        int hidden = config.hiddenSize();
        DeviceBuffer[] h = new DeviceBuffer[devices.length];
        DeviceBuffer[] normed = new DeviceBuffer[devices.length];
        DeviceBuffer[] normed16 = new DeviceBuffer[devices.length];
        DeviceBuffer[] updates = new DeviceBuffer[devices.length];
        for (RingDevice device : withRows()) {
            int d = device.index;
            int rows = sharding.rows(d);
            device.use();
            DeviceKernels k = device.kernels;
            prefillStart[d] = timing == null ? null : device.stamp(device.stream());
            int[] rowPositions = sharding.positions(d);
            int[] ids = new int[rows];
            for (int r = 0; r < rows; r++) {
                ids[r] = prompt[rowPositions[r]];
            }
            DeviceBuffer idBuffer = k.scratch.floats("ring.ids", rows);
            idBuffer.copyFrom(ids);
            positions[d].copyFrom(rowPositions);
            h[d] = k.scratch.floats("model.h", (long) rows * hidden);
            normed[d] = k.scratch.floats("model.normed", (long) rows * hidden);
            normed16[d] = k.scratch.bytes("model.normed16", 2L * rows * hidden);
            updates[d] = k.scratch.floats("model.update", (long) rows * hidden);
            k.embedding.launch(k.stream, idBuffer, rows, device.weights.embeddings, config.embeddingMultiplier(), h[d]);
        }
        for (int b = 0; b < config.blocks().size(); b++) {
            StepInput[] inputs = new StepInput[devices.length];
            CudaEvent[] blockStart = new CudaEvent[devices.length];
            for (RingDevice device : withRows()) {
                device.use();
                int d = device.index;
                blockStart[d] = timing == null ? null : device.stamp(device.stream());
                inputs[d] = StepInput.blockNorm(device.kernels, config, device.weights.blocks.get(b), b == 0, h[d],
                        updates[d], normed[d], normed16[d], sharding.rows(d));
            }
            switch (devices[0].weights.blocks.get(b).mixer()) {
                case GpuWeights.Mamba mamba -> RingMambaBlock.prefill(this, b, inputs, updates, timing);
                case GpuWeights.Attention attention -> RingAttentionBlock.prefill(this, b, inputs, updates, timing);
                case GpuWeights.Mlp mlp -> {
                    for (RingDevice device : withRows()) {
                        device.use();
                        int d = device.index;
                        GpuFeedForward.forward(device.kernels, (GpuWeights.Mlp) device.weights.blocks.get(b).mixer(),
                                inputs[d], sharding.rows(d), updates[d]);
                    }
                }
            }
            if (timing != null) {
                String name = "block: " + switch (devices[0].weights.blocks.get(b).mixer()) {
                    case GpuWeights.Mamba mamba -> "Mamba-2";
                    case GpuWeights.Attention attention -> "attention";
                    case GpuWeights.Mlp mlp -> "MLP";
                };
                for (RingDevice device : withRows()) {
                    device.use();
                    timing.span(device.index, name, blockStart[device.index], device.stamp(device.stream()));
                }
            }
        }
        for (RingDevice device : withRows()) {
            device.use();
            int d = device.index;
            device.kernels.residualAdd.launch(device.stream(), h[d], updates[d], (long) sharding.rows(d) * hidden,
                    config.residualMultiplier());
            if (timing != null) {
                timing.span(d, "the whole prefill", prefillStart[d], device.stamp(device.stream()));
            }
        }
        if (timing != null) {
            timing.host("queue the blocks", System.nanoTime() - hostStart);
        }
        length = prompt.length;
        return h;
    }

    @Override
    public float[] decode(int token) {
        requireOpen();
        if (sharding == null) {
            throw new IllegalStateException("decode continues a prefilled sequence; prefill it first");
        }
        model.checkIds(new int[] {token});
        RingDevice home = devices[stateDevice()];
        home.use();
        DeviceKernels k = home.kernels;
        int hidden = config.hiddenSize();
        DeviceBuffer id = k.scratch.floats("ring.decode-id", 1);
        id.copyFrom(new int[] {token});
        DeviceBuffer h = k.scratch.floats("ring.decode-h", hidden);
        DeviceBuffer normed = k.scratch.floats("ring.decode-normed", hidden);
        DeviceBuffer normed16 = k.scratch.bytes("ring.decode-normed16", 2L * hidden);
        DeviceBuffer update = k.scratch.floats("ring.decode-update", hidden);
        k.embedding.launch(k.stream, id, 1, home.weights.embeddings, config.embeddingMultiplier(), h);
        for (int b = 0; b < config.blocks().size(); b++) {
            home.use();
            StepInput input = StepInput.blockNorm(k, config, home.weights.blocks.get(b), b == 0, h, update, normed,
                    normed16, 1);
            switch (home.weights.blocks.get(b).mixer()) {
                case GpuWeights.Mamba mamba -> RingMambaBlock.decode(this, b, home, input, update);
                case GpuWeights.Attention attention -> RingAttentionBlock.decode(this, b, input, update);
                case GpuWeights.Mlp mlp -> GpuFeedForward.forward(k, mlp, input, 1, update);
            }
        }
        home.use();
        k.residualAdd.launch(k.stream, h, update, hidden, config.residualMultiplier());
        float[] logits = logits(home, h, 0, 1);
        length++;
        generated++;
        return logits;
    }

    /** The logits of the prompt's last position [vocab], from the device rows prefill left. */
    float[] lastLogits(DeviceBuffer[] hidden) {
        int[] location = sharding.locate(sharding.tokens() - 1);
        RingDevice device = devices[location[0]];
        device.use();
        return logits(device, hidden[location[0]], location[1], 1);
    }

    /** lm_head(rmsnorm_final(h[first .. first + rows))) / logitsDivisor on {@code device}: [rows, vocab]. */
    float[] logits(RingDevice device, DeviceBuffer hidden, int first, int rows) {
        DeviceKernels k = device.kernels;
        int width = config.hiddenSize();
        DeviceBuffer finalNormed = k.scratch.floats("model.final", (long) rows * width);
        k.rmsNorm.launch(k.stream, hidden.floatSlice((long) first * width, (long) rows * width), rows, width,
                device.weights.finalNorm, config.normEps(), finalNormed);
        DeviceBuffer logits = k.scratch.floats("model.logits", (long) rows * config.vocabSize());
        k.matmul.matmul(k.stream, finalNormed, rows, device.weights.lmHead, logits);
        float[] values = new float[rows * config.vocabSize()];
        k.stream.synchronize();
        logits.copyTo(values);
        if (config.logitsDivisor() != 1f) {
            for (int i = 0; i < values.length; i++) {
                values[i] /= config.logitsDivisor();
            }
        }
        return values;
    }

    /**
     * The sequence's device memory: K/V shards, outboxes, the rows' positions and the state device's
     * Mamba states, carved from one zeroed allocation a device. (A buffer apiece took some 150
     * allocations and blocking memsets a prefill: 7-9 ms of host time on the 300M shape.)
     */
    private void allocate() {
        int n = devices.length;
        int blocks = config.blocks().size();
        positions = new DeviceBuffer[n];
        queries = new DeviceBuffer[n];
        shards = new RingAttentionBlock.Shard[n][blocks];
        convOutboxes = new DeviceBuffer[n][blocks];
        chainOutboxes = new DeviceBuffer[blocks][sharding.chunkCount()];
        convStates = new DeviceBuffer[blocks];
        ssmStates = new DeviceBuffer[blocks];
        Carving[] carvings = new Carving[n];
        for (int d = 0; d < n; d++) {
            carvings[d] = new Carving();
        }
        int home = stateDevice();
        carvings[home].add(4, buffer -> slotZero = buffer);
        for (RingDevice device : devices) {
            int d = device.index;
            carvings[d].add(4L * sharding.rows(d), buffer -> positions[d] = buffer);
        }
        for (int b = 0; b < blocks; b++) {
            int block = b;
            BlockSpec spec = config.blocks().get(b);
            for (RingDevice device : devices) {
                int d = device.index;
                int rows = sharding.rows(d);
                switch (spec) {
                    case BlockSpec.Attention attention -> {
                        if (rows > 0) {
                            long half = shardRowBytes(attention) * rows;
                            carvings[d].add(2 * half, buffer -> shards[d][block] = new RingAttentionBlock.Shard(
                                    buffer.slice(0, half), buffer.slice(half, half), rows));
                        }
                    }
                    case BlockSpec.Mamba mamba -> carvings[d].add(4L * sharding.chunksOf(d).length
                            * Math.max(1, mamba.convKernel() - 1) * mamba.convChannels(),
                            buffer -> convOutboxes[d][block] = buffer);
                    case BlockSpec.Mlp mlp -> { }
                }
            }
            if (spec instanceof BlockSpec.Mamba mamba) {
                long stateBytes = 4L * mamba.heads() * mamba.headDim() * mamba.stateSize();
                for (int chunk = 0; chunk + 1 < sharding.chunkCount(); chunk++) {
                    int c = chunk;
                    carvings[sharding.owner(chunk)].add(stateBytes, buffer -> chainOutboxes[block][c] = buffer);
                }
                carvings[home].add(4L * Math.max(1, mamba.convKernel() - 1) * mamba.convChannels(),
                        buffer -> convStates[block] = buffer);
                carvings[home].add(stateBytes, buffer -> ssmStates[block] = buffer);
            }
        }
        for (RingDevice device : devices) {
            carvings[device.index].carve(own(device, carvings[device.index].bytes()));
        }
    }

    /** Bytes a row of an attention block's K (or V) shard takes: bf16, heads padded as the kernels read them. */
    private static long shardRowBytes(BlockSpec.Attention spec) {
        return 2L * spec.kvHeads() * StepAttention.paddedHeadDim(spec.headDim());
    }

    /** Buffers laid out in one allocation, 256-byte aligned, each handed to its receiver once carved. */
    private static final class Carving {
        private final List<Long> offsets = new ArrayList<>();
        private final List<Long> sizes = new ArrayList<>();
        private final List<Consumer<DeviceBuffer>> receivers = new ArrayList<>();
        private long bytes;

        void add(long size, Consumer<DeviceBuffer> receiver) {
            offsets.add(bytes);
            sizes.add(size);
            receivers.add(receiver);
            bytes += (Math.max(size, 1) + 255) / 256 * 256;
        }

        long bytes() {
            return bytes;
        }

        void carve(DeviceBuffer whole) {
            for (int i = 0; i < offsets.size(); i++) {
                receivers.get(i).accept(whole.slice(offsets.get(i), sizes.get(i)));
            }
        }
    }

    private RingAttentionBlock.Shard newShard(RingDevice device, BlockSpec.Attention spec, int capacity) {
        long rowBytes = shardRowBytes(spec);
        RingAttentionBlock.Shard shard = new RingAttentionBlock.Shard(device.allocateZeroed(rowBytes * capacity),
                device.allocateZeroed(rowBytes * capacity), capacity);
        owned.get(device.index).add(shard);
        return shard;
    }

    private DeviceBuffer own(RingDevice device, long bytes) {
        DeviceBuffer buffer = device.allocateZeroed(bytes);
        owned.get(device.index).add(buffer);
        return buffer;
    }

    RingDevice[] devices() {
        return devices;
    }

    /** The devices that hold rows of the prompt (with fewer tokens than chunks, some hold none), in order. */
    List<RingDevice> withRows() {
        List<RingDevice> holding = new ArrayList<>();
        for (RingDevice device : devices) {
            if (sharding.rows(device.index) > 0) {
                holding.add(device);
            }
        }
        return holding;
    }

    int length() {
        return length;
    }

    /** The device holding the prompt's last chunk: the Mamba states, and the generated tokens' K/V. */
    int stateDevice() {
        return sharding.owner(sharding.chunkCount() - 1);
    }

    /** Rows in the state device's shards: its prompt rows and the tokens generated so far. */
    int homeShardRows() {
        return sharding.rows(stateDevice()) + generated;
    }

    RingAttentionBlock.Shard shard(int device, int block) {
        return shards[device][block];
    }

    /** The shard, grown (doubling, rows kept) until it has room for {@code rows} rows. */
    RingAttentionBlock.Shard shardWithRoom(int device, int block, int rows) {
        RingAttentionBlock.Shard shard = shards[device][block];
        if (shard != null && shard.capacity() >= rows) {
            return shard;
        }
        RingDevice owner = devices[device];
        BlockSpec.Attention spec = (BlockSpec.Attention) config.blocks().get(block);
        int capacity = Math.max(rows, shard == null ? 64 : 2 * shard.capacity());
        RingAttentionBlock.Shard grown = newShard(owner, spec, capacity);
        if (shard != null) {
            long held = shardRowBytes(spec) * homeShardRows();
            grown.keys().copyFromAsync(shard.keys(), held, owner.stream());
            grown.values().copyFromAsync(shard.values(), held, owner.stream());
            owner.stream().synchronize();
            owned.get(device).remove(shard);
            shard.close();
        }
        shards[device][block] = grown;
        return grown;
    }

    DeviceBuffer positions(int device) {
        return positions[device];
    }

    void setQuery(int device, DeviceBuffer q16) {
        queries[device] = q16;
    }

    DeviceBuffer query(int device) {
        return queries[device];
    }

    DeviceBuffer convOutbox(int device, int block) {
        return convOutboxes[device][block];
    }

    DeviceBuffer chainOutbox(int block, int chunk) {
        return chainOutboxes[block][chunk];
    }

    DeviceBuffer convState(int block) {
        return convStates[block];
    }

    DeviceBuffer ssmState(int block) {
        return ssmStates[block];
    }

    DeviceBuffer slotZero() {
        return slotZero;
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("this sharded sequence was closed");
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (RingDevice device : devices) {
            device.use();
            device.device.synchronize();
            for (AutoCloseable resource : owned.get(device.index)) {
                try {
                    resource.close();
                } catch (Exception e) {
                    throw new IllegalStateException("freeing a sharded sequence's device memory failed", e);
                }
            }
            owned.get(device.index).clear();
        }
        model.released(this);
    }
}
