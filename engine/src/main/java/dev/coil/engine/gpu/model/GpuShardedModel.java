package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.parallel.RingScore;
import dev.coil.engine.parallel.ScoreCollector;
import dev.coil.engine.parallel.ShardLayout;
import dev.coil.engine.parallel.ShardedModel;
import dev.coil.engine.parallel.ShardedRun;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.LoadedModel;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Semaphore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Context parallelism over several GPUs: the model's weights on each, one sequence at a time
 * sharded over them ({@link GpuShardedRun}): ring attention for attention blocks, chained states
 * for Mamba-2 blocks, peer-to-peer copies between the GPUs (NVLink where present).
 *
 * <p>One sequence at a time: a second {@link #newRun} (or a {@link #score}) while a run is open
 * fails at once.
 */
public final class GpuShardedModel implements ShardedModel {

    private static final Logger LOG = LoggerFactory.getLogger(GpuShardedModel.class);

    /** Overrides {@link #positionsPerDevice} (tests and demonstrations of a context past one GPU). */
    public static final String POSITIONS_PROPERTY = "coil.context.positionsPerDevice";

    /** Rows per lm_head product when scoring: bounds the logits held at once. */
    private static final int LOGIT_ROWS = 256;

    private final ModelConfig config;
    private final RingDevice[] devices;
    private final List<CudaDevice> opened;
    private long positionsPerDevice; // 0 until first asked: estimated then, after the serving cache took its share
    private final Semaphore running = new Semaphore(1);

    private GpuShardedModel(ModelConfig config, RingDevice[] devices, List<CudaDevice> opened,
            long positionsPerDevice) {
        this.config = config;
        this.devices = devices;
        this.opened = opened;
        this.positionsPerDevice = positionsPerDevice;
    }

    /** Opens the CUDA devices named (cuda:0,cuda:1, …), enables peer access and uploads the weights to each. */
    public static GpuShardedModel open(LoadedModel loaded, Devices devices) {
        return open(loaded, devices, SsdScanKernel.Precision.F32);
    }

    /** As above, each shard's SSD scan taking its products in {@code scanPrecision} ({@code --ssd-precision}). */
    public static GpuShardedModel open(LoadedModel loaded, Devices devices, SsdScanKernel.Precision scanPrecision) {
        if (!devices.isCuda()) {
            throw new IllegalArgumentException("GPU context parallelism needs CUDA devices, not " + devices);
        }
        List<CudaDevice> opened = new ArrayList<>();
        try {
            for (int ordinal : devices.ordinals()) {
                opened.add(CudaDevice.open(ordinal));
            }
            return onDevices(loaded, opened, opened, Long.getLong(POSITIONS_PROPERTY, -1), scanPrecision);
        } catch (RuntimeException e) {
            opened.forEach(CudaDevice::close);
            throw e;
        }
    }

    /**
     * A ring over {@code ring} (the same GPU may appear several times: one card then runs every
     * ring device, as tests do). {@code owned}: the devices this model closes. positionsPerDevice
     * ≤ 0: estimated from free memory.
     */
    public static GpuShardedModel onDevices(LoadedModel loaded, List<CudaDevice> ring, List<CudaDevice> owned,
            long positionsPerDevice) {
        return onDevices(loaded, ring, owned, positionsPerDevice, SsdScanKernel.Precision.F32);
    }

    /** As above, each shard's SSD scan taking its products in {@code scanPrecision}. */
    public static GpuShardedModel onDevices(LoadedModel loaded, List<CudaDevice> ring, List<CudaDevice> owned,
            long positionsPerDevice, SsdScanKernel.Precision scanPrecision) {
        ModelConfig config = loaded.config();
        Map<Integer, GpuWeights> uploaded = new LinkedHashMap<>();
        RingDevice[] devices = new RingDevice[ring.size()];
        try {
            for (CudaDevice a : ring) {
                for (CudaDevice b : ring) {
                    if (!a.enablePeerAccess(b)) {
                        LOG.warn("cuda:{} cannot reach cuda:{} directly: ring copies go through the host",
                                a.ordinal(), b.ordinal());
                    }
                }
            }
            for (int i = 0; i < devices.length; i++) {
                CudaDevice device = ring.get(i);
                device.makeCurrent();
                boolean first = !uploaded.containsKey(device.ordinal());
                GpuWeights weights = uploaded.computeIfAbsent(device.ordinal(),
                        unused -> new GpuWeights(device, config, loaded.checkpoint()));
                devices[i] = new RingDevice(i, device, weights, first, scanPrecision);
            }
        } catch (RuntimeException e) {
            for (RingDevice device : devices) {
                if (device != null) {
                    device.close();
                }
            }
            throw e;
        }
        LOG.info("context parallelism over {} GPUs ({})", devices.length, describe(ring));
        return new GpuShardedModel(config, devices, List.copyOf(owned), Math.max(0, positionsPerDevice));
    }

    private static String describe(List<CudaDevice> ring) {
        return String.join(", ", ring.stream().map(device -> "cuda:" + device.ordinal()).toList());
    }

    /**
     * Positions one GPU holds for a sequence run alone: its free memory (with a tenth spared) over
     * what a position costs in a prefill. Every named scratch buffer stays allocated at its largest,
     * so the cost is the sum over the kinds of block the model has (not the widest one): the hidden
     * rows, the K/V of every attention block, and each kind's activations (Mamba: in_proj's output,
     * conv output, y, the gated operand, the SSD workspace; attention: q, k, v, their bf16 copies,
     * the partial outputs and a received shard; MLP: its hidden rows). 87 KB for the 300M shape,
     * where an H100 was seen to use about 73 KB a position (786k held, 1M not).
     */
    private static long estimatePositions(ModelConfig config, RingDevice[] devices) {
        long mamba = 0;
        long attention = 0;
        long mlp = 0;
        long keyValues = 0;
        for (BlockSpec spec : config.blocks()) {
            switch (spec) {
                case BlockSpec.Attention a -> {
                    int padded = StepAttention.paddedHeadDim(a.headDim());
                    keyValues += 4L * a.kvHeads() * padded;
                    attention = Math.max(attention, 4L * (a.queryHeads() + 2L * a.kvHeads()) * a.headDim()
                            + 2L * a.queryHeads() * padded + 8L * a.queryHeads() * padded + 8L * a.queryHeads()
                            + 8L * a.kvHeads() * padded + 4L * a.queryHeads() * a.headDim());
                }
                case BlockSpec.Mamba m -> {
                    long width = m.innerSize() + m.convChannels() + m.heads();
                    long workspace = 4L * m.heads() * m.headDim() * m.stateSize() / m.chunkSize()
                            + 4L * m.groups() * 256 + 4L * m.heads();
                    mamba = Math.max(mamba, 4L * (width + m.convChannels() + m.innerSize() + m.heads())
                            + 2L * m.innerSize() + workspace);
                }
                case BlockSpec.Mlp m -> {
                    BlockSpec.Experts e = m.experts();
                    // routed experts: scores, choices and weights, and the workspace of RoutedExpertsKernel.add
                    // (each choice's silu(gate) · up and output, and the row in bf16); behind a latent
                    // projection, the row and the sum in the latent size and fc2's output
                    int size = e == null ? 0 : e.rowSize(config.hiddenSize());
                    long routed = e == null ? 0 : 4L * e.count() + 8L * e.perToken()
                            + 4L * e.perToken() * (e.width() + size) + 2L * size
                            + (e.latent() > 0 ? 8L * size + 4L * config.hiddenSize() : 0);
                    mlp = Math.max(mlp, 10L * m.intermediateSize() + routed);
                }
            }
        }
        long perPosition = 14L * config.hiddenSize() + keyValues + mamba + attention + mlp;
        long free = Long.MAX_VALUE;
        for (RingDevice device : devices) {
            device.use();
            free = Math.min(free, device.device.freeMemory());
        }
        return Math.max(1, free * 9 / 10 / perPosition);
    }

    ModelConfig config() {
        return config;
    }

    RingDevice[] devices() {
        return devices;
    }

    @Override
    public int deviceCount() {
        return devices.length;
    }

    /**
     * Estimated from the free memory when first asked (after the serving engine's cache, opened
     * later on the same GPU, has taken its share), unless given.
     */
    @Override
    public synchronized long positionsPerDevice() {
        if (positionsPerDevice == 0) {
            positionsPerDevice = estimatePositions(config, devices);
            LOG.info("context parallelism: about {} positions of one sequence fit each GPU", positionsPerDevice);
        }
        return positionsPerDevice;
    }

    @Override
    public ShardedRun newRun(ShardLayout layout) {
        if (!running.tryAcquire()) {
            throw new IllegalStateException("a sharded model runs one sequence at a time; close the open run first");
        }
        return new GpuShardedRun(this, layout);
    }

    /** Called by a run's close: the next run may start. */
    void released(GpuShardedRun run) {
        running.release();
    }

    @Override
    public RingScore score(int[] ids, int topK, ShardLayout layout) {
        if (ids.length == 0) {
            throw new IllegalArgumentException("prompt must contain at least one token");
        }
        try (GpuShardedRun run = (GpuShardedRun) newRun(layout)) {
            DeviceBuffer[] hidden = run.prefillHidden(ids, null);
            ScoreCollector collector = new ScoreCollector(ids, run.sharding(), config.vocabSize(), topK);
            for (RingDevice device : devices) {
                device.use();
                collector.addDevice(device.index, LOGIT_ROWS,
                        (first, rows) -> run.logits(device, hidden[device.index], first, rows));
            }
            return collector.result();
        }
    }

    /** Prompt prefill only, for benchmarks: the logits of the last position, with per-step timings when asked. */
    public float[] prefillLastLogits(int[] ids, ShardLayout layout, RingTimings timings) {
        RingTimings.Recorder recorder = timings == null ? null : timings.recorder();
        float[] logits;
        try (GpuShardedRun run = (GpuShardedRun) newRun(layout)) {
            DeviceBuffer[] hidden = run.prefillHidden(ids, recorder);
            long start = System.nanoTime();
            logits = run.lastLogits(hidden);
            for (RingDevice device : devices) {
                device.use();
                device.device.synchronize();
            }
            if (recorder != null) {
                recorder.host("wait for the last logits", System.nanoTime() - start);
            }
            start = System.nanoTime();
            run.close();
            if (recorder != null) {
                recorder.host("free the sequence's buffers", System.nanoTime() - start);
            }
        }
        if (timings != null) {
            timings.collect();
            for (RingDevice device : devices) {
                device.use();
                device.clearTimings();
            }
        }
        return logits;
    }

    void checkIds(int[] ids) {
        for (int id : ids) {
            if (id < 0 || id >= config.vocabSize()) {
                throw new IllegalArgumentException(
                        "token id " + id + " is outside the vocabulary [0, " + config.vocabSize() + ")");
            }
        }
    }

    @Override
    public void close() {
        for (RingDevice device : devices) {
            device.close();
        }
        for (CudaDevice device : opened) {
            device.close();
        }
    }
}
