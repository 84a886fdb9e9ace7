package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.ops.SsmShape;
import dev.coil.engine.parallel.Sharding;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A Mamba-2 block over a sharded sequence. The recurrence is linear in its state, so each chunk
 * of the prompt is scanned from a zero state on its GPU, all at once, as far as the SSD's
 * entering state of each of its 256-token SSD chunks; then the states are chained along the prompt's
 * chunks in sequence order: the state S that entered chunk c is added to its SSD chunks' entering
 * states (decayed by the SSD chunks before each), the state leaving c is its scan's final state +
 * decay over c · S, and only then are c's outputs computed, exactly as a scan from S would. Only
 * states (heads · headDim · stateSize floats a chunk) travel between GPUs, and the conv's history:
 * the last kernelSize − 1 inputs before each chunk. The GPU holding the last chunk keeps the sequence's conv and SSM states and
 * decodes.
 */
final class RingMambaBlock {

    private RingMambaBlock() {
    }

    /** inputs[d]: block-normed rows of device d → updates[d] = out_proj(gated_norm(y, z)), [rows(d), hidden]. */
    static void prefill(GpuShardedRun run, int block, StepInput[] inputs, DeviceBuffer[] updates,
            RingTimings.Recorder timing) {
        RingDevice[] devices = run.devices();
        PhaseStamps stamps = new PhaseStamps(run, timing);
        Sharding sharding = run.sharding();
        BlockSpec.Mamba spec = ((GpuWeights.Mamba) devices[0].weights.blocks.get(block).mixer()).spec();
        SsmShape shape = new SsmShape(spec.heads(), spec.headDim(), spec.groups(), spec.stateSize());
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int heads = spec.heads();
        int width = spec.projectionWidth();
        int groupWidth = spec.groups() * spec.stateSize();
        int history = spec.convKernel() - 1;

        // 1. Projections and dt; each chunk's last inputs into this block's outbox for the next chunk's conv.
        for (RingDevice device : run.withRows()) {
            int rows = sharding.rows(device.index);
            device.use();
            DeviceKernels k = device.kernels;
            GpuWeights.Mamba w = mamba(device, block);
            DeviceBuffer projected = k.scratch.floats("mamba.projected", (long) rows * width);
            inputs[device.index].project(k, rows, w.inProjection(), projected);
            device.parallel.promptDt(k.stream, projected, width, spec.dtColumn(), w.dtBias(), spec.dtMin(),
                    spec.dtMax(), rows, heads, rows, k.scratch.floats("ring.dt", (long) rows * heads));
            DeviceBuffer outbox = run.convOutbox(device.index, block);
            int[] chunks = sharding.chunksOf(device.index);
            for (int j = 0; j < chunks.length && history > 0; j++) {
                int length = sharding.chunkLength(chunks[j]);
                int kept = Math.min(history, length);
                int first = sharding.firstRow(device.index, chunks[j]) + length - kept;
                DeviceCopy.rows(k.stream, projected.floatSlice((long) first * width, (long) kept * width), width, inner,
                        outbox.floatSlice(((long) j * history + history - kept) * channels, (long) kept * channels),
                        channels, 0, kept, channels);
            }
            device.mark("ring.conv-outbox");
        }
        stamps.phaseEnded("Mamba-2: in_proj, dt");

        // 2. Each chunk's conv (over the inputs before it, from whichever GPU holds them) and the states of its
        //    scan from zero (the SSD's Gram matrices, chunk states and their passing; outputs wait for step 4).
        for (RingDevice device : run.withRows()) {
            int d = device.index;
            int rows = sharding.rows(d);
            device.use();
            DeviceKernels k = device.kernels;
            GpuWeights.Mamba w = mamba(device, block);
            DeviceBuffer projected = k.scratch.floats("mamba.projected", (long) rows * width);
            DeviceBuffer dt = k.scratch.floats("ring.dt", (long) rows * heads);
            DeviceBuffer convolved = k.scratch.floats("mamba.convolved", (long) rows * channels);
            DeviceBuffer y = k.scratch.floats("mamba.y", (long) rows * inner);
            int[] chunks = sharding.chunksOf(d);
            for (int j = 0; j < chunks.length; j++) {
                int chunk = chunks[j];
                int length = sharding.chunkLength(chunk);
                if (length == 0) {
                    continue;
                }
                int first = sharding.firstRow(d, chunk);
                DeviceBuffer convState = k.scratch.floats("ring.conv-history." + j,
                        Math.max(1, (long) history * channels));
                gatherHistory(run, block, device, sharding.chunkStart(chunk), history, channels, convState);
                DeviceBuffer x = StepMamba.rowsOf(convolved, channels, first, length, 0, channels);
                k.conv.launch(k.stream, StepMamba.rowsOf(projected, width, first, length, inner, channels), width,
                        length, channels, w.convWeight(), w.convBias(), spec.convKernel(), convState, x);
                if (chunk == sharding.chunkCount() - 1) {
                    // The conv's history after the prompt: the decode's conv state.
                    run.convState(block).copyFromAsync(convState, 4L * history * channels, k.stream);
                }
                DeviceBuffer own = k.scratch.floats("ring.own-state." + j, shape.stateFloats());
                own.fillAsync(0, k.stream);
                k.ssdScan.launchStates(k.stream, k.scanPrecision, shape, length, spec.chunkSize(),
                        scanInputs(spec, convolved, dt, first, length), w.decay(), w.skip(), own,
                        y.floatSlice((long) first * inner, (long) length * inner),
                        workspace(k, shape, spec, j, length));
            }
        }

        stamps.phaseEnded("Mamba-2: conv, chunk states");

        // 3. The chain, in sequence order: each chunk takes the state that entered it into its SSD chunks' entering
        //    states and passes on the state leaving it. Only states move here, so the chain is short. A GPU queues
        //    its chunks' outputs (4) only once it has passed on the last state another chunk waits for, lest its
        //    outputs hold up the state the next GPU waits for; until then it would only wait (zigzag: the first
        //    GPU's first chunk's outputs run while the other GPUs chain the middle chunks).
        boolean early = earlyOutputs();
        int[] lastFeeding = new int[devices.length]; // per device: its last chunk whose state a later chunk takes
        Arrays.fill(lastFeeding, -1);
        for (int chunk = 0; chunk + 1 < sharding.chunkCount(); chunk++) {
            lastFeeding[sharding.owner(chunk)] = chunk;
        }
        List<List<Integer>> pending = new ArrayList<>(); // per device: chunks (its j) whose outputs wait
        for (int d = 0; d < devices.length; d++) {
            pending.add(new ArrayList<>());
        }
        int chunkCount = sharding.chunkCount();
        DeviceBuffer entering = null; // on the owner of the chunk at hand
        RingDevice holder = null;
        for (int chunk = 0; chunk < chunkCount; chunk++) {
            RingDevice device = devices[sharding.owner(chunk)];
            device.use();
            DeviceKernels k = device.kernels;
            int j = indexOf(sharding.chunksOf(device.index), chunk);
            if (entering == null) {
                entering = k.scratch.floats("ring.zero-state", shape.stateFloats());
                entering.fillAsync(0, k.stream);
            } else if (holder != device) {
                DeviceBuffer arrived = k.scratch.floats("ring.entering." + j, shape.stateFloats());
                device.pull(k.stream, arrived, holder, entering, 4L * shape.stateFloats(), holder.event("ring.chain"));
                entering = arrived;
            }
            int length = sharding.chunkLength(chunk);
            DeviceBuffer leaving = chunk == chunkCount - 1 ? run.ssmState(block) : run.chainOutbox(block, chunk);
            if (length == 0) {
                leaving.copyFromAsync(entering, 4L * shape.stateFloats(), k.stream);
            } else {
                k.ssdScan.enterState(k.stream, shape, length, spec.chunkSize(), workspace(k, shape, spec, j, length),
                        entering, k.scratch.floats("ring.own-state." + j, shape.stateFloats()), leaving);
            }
            device.mark("ring.chain");
            entering = leaving;
            holder = device;
            pending.get(device.index).add(j);
            if (early && chunk >= lastFeeding[device.index]) {
                for (int queued : pending.get(device.index)) {
                    outputs(run, block, device, queued);
                }
                pending.get(device.index).clear();
            }
        }

        // 4. Each chunk's outputs not yet queued, from the entering states now in its workspace.
        for (RingDevice device : run.withRows()) {
            device.use();
            for (int j : pending.get(device.index)) {
                outputs(run, block, device, j);
            }
        }
        stamps.phaseEnded("Mamba-2: state chain, outputs");

        // 5. The gated norm and out_proj over each GPU's rows.
        for (RingDevice device : run.withRows()) {
            int rows = sharding.rows(device.index);
            device.use();
            DeviceKernels k = device.kernels;
            GpuWeights.Mamba w = mamba(device, block);
            DeviceBuffer projected = k.scratch.floats("mamba.projected", (long) rows * width);
            DeviceBuffer y = k.scratch.floats("mamba.y", (long) rows * inner);
            StepMamba.gatedOutput(k, w, rows, y, projected, updates[device.index], false);
        }
        stamps.phaseEnded("Mamba-2: gated norm, out_proj");
    }

    /**
     * Whether a GPU queues its chunks' outputs as soon as no later chunk waits on it (the default;
     * {@code -Dcoil.ring.earlyOutputs=false}: every GPU after the whole chain).
     */
    private static boolean earlyOutputs() {
        return !"false".equals(System.getProperty("coil.ring.earlyOutputs"));
    }

    /** The outputs of device's j-th chunk, from the entering states its scan's workspace now holds. */
    private static void outputs(GpuShardedRun run, int block, RingDevice device, int j) {
        Sharding sharding = run.sharding();
        int chunk = sharding.chunksOf(device.index)[j];
        int length = sharding.chunkLength(chunk);
        if (length == 0) {
            return;
        }
        BlockSpec.Mamba spec = mamba(device, block).spec();
        SsmShape shape = new SsmShape(spec.heads(), spec.headDim(), spec.groups(), spec.stateSize());
        int rows = sharding.rows(device.index);
        int first = sharding.firstRow(device.index, chunk);
        DeviceKernels k = device.kernels;
        GpuWeights.Mamba w = mamba(device, block);
        k.ssdScan.launchOutputs(k.stream, k.scanPrecision, shape, length, spec.chunkSize(),
                scanInputs(spec, k.scratch.floats("mamba.convolved", (long) rows * spec.convChannels()),
                        k.scratch.floats("ring.dt", (long) rows * spec.heads()), first, length),
                w.decay(), w.skip(), k.scratch.floats("ring.own-state." + j, shape.stateFloats()),
                k.scratch.floats("mamba.y", (long) rows * spec.innerSize())
                        .floatSlice((long) first * spec.innerSize(), (long) length * spec.innerSize()),
                workspace(k, shape, spec, j, length));
    }

    /** Stamps on each GPU's compute stream between a block's phases, when timing is asked for. */
    private static final class PhaseStamps {
        private final GpuShardedRun run;
        private final RingTimings.Recorder timing;
        private final CudaEvent[] last;

        PhaseStamps(GpuShardedRun run, RingTimings.Recorder timing) {
            this.run = run;
            this.timing = timing;
            this.last = new CudaEvent[run.devices().length];
            if (timing != null) {
                for (RingDevice device : run.withRows()) {
                    device.use();
                    last[device.index] = device.stamp(device.stream());
                }
            }
        }

        /** Records the span from the previous stamp to now on each GPU as the phase name. */
        void phaseEnded(String name) {
            if (timing == null) {
                return;
            }
            for (RingDevice device : run.withRows()) {
                device.use();
                CudaEvent now = device.stamp(device.stream());
                timing.span(device.index, name, last[device.index], now);
                last[device.index] = now;
            }
        }
    }

    /**
     * The conv's history before a chunk starting at {@code start}: the xBC inputs of positions
     * start − history .. start − 1 (zeros before position 0), each from the outbox of the GPU that
     * holds it, into {@code state} [history, channels].
     */
    private static void gatherHistory(GpuShardedRun run, int block, RingDevice device, int start, int history,
            int channels, DeviceBuffer state) {
        DeviceKernels k = device.kernels;
        Sharding sharding = run.sharding();
        state.fillAsync(0, k.stream);
        long rowBytes = 4L * channels;
        for (int i = 0; i < history; i++) {
            int position = start - history + i;
            if (position < 0) {
                continue;
            }
            int chunk = chunkOf(sharding, position);
            int owner = sharding.owner(chunk);
            int j = indexOf(sharding.chunksOf(owner), chunk);
            int slot = j * history + history - (sharding.chunkStart(chunk) + sharding.chunkLength(chunk) - position);
            RingDevice source = run.devices()[owner];
            device.pull(k.stream, state.floatSlice((long) i * channels, channels), source,
                    run.convOutbox(owner, block).floatSlice((long) slot * channels, channels), rowBytes,
                    source.event("ring.conv-outbox"));
        }
    }

    /** One generated token on the GPU holding the states: conv and state updates, then the gated output. */
    static void decode(GpuShardedRun run, int block, RingDevice device, StepInput input, DeviceBuffer update) {
        DeviceKernels k = device.kernels;
        GpuWeights.Mamba w = mamba(device, block);
        BlockSpec.Mamba spec = w.spec();
        DeviceBuffer projected = k.scratch.floats("mamba.projected", spec.projectionWidth());
        input.project(k, 1, w.inProjection(), projected);
        DeviceBuffer convolved = k.scratch.floats("mamba.convolved", spec.convChannels());
        DeviceBuffer y = k.scratch.floats("mamba.y", spec.innerSize());
        boolean gated = StepMamba.gatesInOutProjection(k, w, 1);
        StepMamba.decodeUpdates(k, w, 1, projected, true, run.convState(block), run.ssmState(block), run.slotZero(),
                convolved, y, gated);
        StepMamba.gatedOutput(k, w, 1, y, projected, update, gated);
    }

    /** x, dt, B and C of a chunk's rows: x, B, C column ranges of the conv output, dt its own rows. */
    private static SsdScanKernel.Inputs scanInputs(BlockSpec.Mamba spec, DeviceBuffer convolved, DeviceBuffer dt,
            int first, int length) {
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int groupWidth = spec.groups() * spec.stateSize();
        return new SsdScanKernel.Inputs(StepMamba.rowsOf(convolved, channels, first, length, 0, inner), channels,
                dt.floatSlice((long) first * spec.heads(), (long) length * spec.heads()), spec.heads(),
                StepMamba.rowsOf(convolved, channels, first, length, inner, groupWidth),
                StepMamba.rowsOf(convolved, channels, first, length, inner + groupWidth, groupWidth), channels);
    }

    /** The scan's workspace for a device's j-th chunk: kept from its states to its outputs. */
    private static DeviceBuffer workspace(DeviceKernels k, SsmShape shape, BlockSpec.Mamba spec, int j, int length) {
        return k.scratch.bytes("ring.ssd." + j, SsdScanKernel.workspaceBytes(shape, 1, length, spec.chunkSize()));
    }

    private static GpuWeights.Mamba mamba(RingDevice device, int block) {
        return (GpuWeights.Mamba) device.weights.blocks.get(block).mixer();
    }

    private static int chunkOf(Sharding sharding, int position) {
        for (int chunk = 0; chunk < sharding.chunkCount(); chunk++) {
            if (position < sharding.chunkStart(chunk) + sharding.chunkLength(chunk)) {
                return chunk;
            }
        }
        throw new IndexOutOfBoundsException("position " + position + " is past the prompt");
    }

    static int indexOf(int[] values, int value) {
        for (int i = 0; i < values.length; i++) {
            if (values[i] == value) {
                return i;
            }
        }
        throw new IllegalArgumentException(value + " is not among the device's chunks");
    }
}
