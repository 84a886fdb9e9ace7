package dev.coil.engine.gpu.model;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.StateStore;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaException;
import dev.coil.engine.gpu.blas.GpuMatmul;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.runner.Backend;
import dev.coil.engine.runner.LoadedModel;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The serving engine's steps on one CUDA device: the weights uploaded once, the cache's K/V
 * blocks and Mamba slots in device memory ({@link DeviceStateStore}), each step a
 * {@link GpuStep}, decode steps replayed from CUDA graphs.
 */
public final class GpuBackend implements Backend {

    private static final Logger LOG = LoggerFactory.getLogger(GpuBackend.class);

    /** System property turning token draws on the device off ({@code -Dcoil.cuda.sampling=false}): logits come back. */
    public static final String SAMPLING_PROPERTY = "coil.cuda.sampling";
    /**
     * System property: "true" times every replayed decode step on the device (two events and a
     * read, a few µs of host time a step), for {@link #stepProfile}. Off by default.
     */
    public static final String STEP_TIMING_PROPERTY = "coil.cuda.stepTiming";
    /**
     * System property: N &gt; 0 records, for N replayed decode steps after the first
     * {@code GpuStep.TRACE_AFTER} replays, when each kernel returned from its wait
     * ({@link dev.coil.engine.gpu.DecodeTrace}), for {@link #stepTrace}. Off by default.
     */
    public static final String TRACE_PROPERTY = "coil.cuda.traceSteps";
    /**
     * System property turning off the queueing of each greedy decode step before the tokens of the
     * one before are read ({@code -Dcoil.cuda.runAhead=false}); on by default.
     */
    public static final String RUN_AHEAD_PROPERTY = "coil.cuda.runAhead";
    /**
     * System property: "false" moves each step's inputs to the device and a one-row greedy token back
     * with the copy engine. By default a step's first kernel reads its inputs from pinned host
     * memory and lm_head's launch writes the token there (unified addressing), which saves the
     * device two transfers a decode step.
     */
    public static final String HOST_MAPPED_PROPERTY = "coil.cuda.hostMapped";
    /**
     * System property turning off prompt scoring on the device ({@code -Dcoil.cuda.promptScoring=false}):
     * the logits of every prompt row whose request wants prompt logprobs then come back to the host.
     */
    public static final String PROMPT_SCORING_PROPERTY = "coil.cuda.promptScoring";

    /**
     * {@code -Dcoil.cuda.greedyLogprobsLaunch=false} keeps a step of greedy rows with logprobs on the
     * draw's usual launches (the logits divided, the logprobs, the draw, the chosen tokens) instead of
     * the logprobs launch alone, for comparisons.
     */
    public static final String GREEDY_LOGPROBS_LAUNCH_PROPERTY = "coil.cuda.greedyLogprobsLaunch";

    /**
     * {@code -Dcoil.cuda.drawLater=false} keeps a request whose draw depends on its last token (a
     * grammar, penalties) out of steps queued ahead ({@link #drawsLater}), for comparisons.
     */
    public static final String DRAW_LATER_PROPERTY = "coil.cuda.drawLater";

    private final LoadedModel loaded;
    private final CudaDevice device;
    private final GpuWeights weights;
    private final DeviceKernels kernels;
    private final boolean graphs;
    private final boolean runAhead = !"false".equalsIgnoreCase(System.getProperty(RUN_AHEAD_PROPERTY, "true"));
    private final boolean drawLater = !"false".equalsIgnoreCase(System.getProperty(DRAW_LATER_PROPERTY, "true"));
    private final boolean deviceSampling = !"false".equalsIgnoreCase(System.getProperty(SAMPLING_PROPERTY, "true"));
    private final boolean promptScoring = !"false".equalsIgnoreCase(System.getProperty(PROMPT_SCORING_PROPERTY, "true"));
    private DeviceStateStore store;
    private GpuStep step;

    private GpuBackend(LoadedModel loaded, CudaDevice device, GpuWeights weights, DeviceKernels kernels,
            boolean graphs) {
        this.loaded = loaded;
        this.device = device;
        this.weights = weights;
        this.kernels = kernels;
        this.graphs = graphs;
    }

    /** Opens cuda:{@code ordinal} and uploads the model; {@code graphs}: replay decode steps from CUDA graphs. */
    public static GpuBackend open(LoadedModel loaded, int ordinal, boolean graphs) {
        return open(loaded, ordinal, graphs, SsdScanKernel.Precision.F32);
    }

    /** As above, prompt steps scanning with {@code scanPrecision} ({@code --ssd-precision}). */
    public static GpuBackend open(LoadedModel loaded, int ordinal, boolean graphs,
            SsdScanKernel.Precision scanPrecision) {
        return open(loaded, ordinal, graphs, scanPrecision, false);
    }

    /**
     * As above; {@code batchInvariant} ({@code --batch-invariant}): each row of a step computed the
     * same way whatever rows share it (DeviceKernels#batchInvariant), at some cost in speed.
     */
    public static GpuBackend open(LoadedModel loaded, int ordinal, boolean graphs,
            SsdScanKernel.Precision scanPrecision, boolean batchInvariant) {
        CudaDevice device = CudaDevice.open(ordinal);
        try {
            GpuWeights weights = new GpuWeights(device, loaded.config(), loaded.checkpoint());
            try {
                DeviceKernels kernels = new DeviceKernels(device, device.newStream(), scanPrecision, batchInvariant);
                kernels.useBlasWorkspace(device.allocate(32L << 20));
                return new GpuBackend(loaded, device, weights, kernels, graphs);
            } catch (RuntimeException e) {
                weights.close();
                throw e;
            }
        } catch (RuntimeException e) {
            device.close();
            throw e;
        }
    }

    /** The device's kernels and stream, for timing tests that queue work beside a step. */
    DeviceKernels kernels() {
        return kernels;
    }

    @Override
    public boolean batchInvariant() {
        return kernels.batchInvariant;
    }

    @Override
    public String description() {
        return device.description()
                + (kernels.scanPrecision == SsdScanKernel.Precision.F32 ? "" : ", SSD scan in tf32")
                + (kernels.batchInvariant ? ", batch-invariant" : "");
    }

    @Override
    public long freeMemoryBytes() {
        device.makeCurrent();
        return device.freeMemory();
    }

    @Override
    public StateStore newStateStore(CacheSizing sizing) {
        if (store != null) {
            throw new IllegalStateException("the GPU backend holds one cache");
        }
        ModelConfig config = loaded.config();
        store = new DeviceStateStore(device, kernels.stream, config.blocks(), sizing);
        step = new GpuStep(config, weights, kernels, store, graphs, Math.max(1, sizing.slots()), deviceSampling);
        return store;
    }

    /**
     * Has cuBLAS pick the kernels of every projection for each token bucket up to maxStepRows, and of
     * lm_head up to the slots' count (the most rows a step asks logits for), by running each once on
     * zeros: the first product of a new bucket searches cuBLAS's heuristics, about 5 ms of host time
     * a weight shape, which held up a prompt step of a new size by 40 ms.
     */
    @Override
    public void prepare(int maxStepRows) {
        if (store == null) {
            throw new IllegalStateException("prepare follows newStateStore");
        }
        device.makeCurrent();
        long start = System.nanoTime();
        try {
            // lm_head runs on the rows whose logits a step needs: at most one a sequence slot.
            int products = kernels.matmul.prepare(kernels.stream,
                    List.of(new GpuMatmul.Plan(weights.projections(), maxStepRows),
                            new GpuMatmul.Plan(List.of(weights.lmHead), Math.min(maxStepRows, store.slots()))));
            if (products > 0) {
                LOG.info("{}: cuBLAS kernels picked for {} products of up to {} rows in {} ms", device.description(),
                        products, maxStepRows, (System.nanoTime() - start) / 1_000_000);
            }
        } catch (CudaException e) {
            // Only the scratch of the products can fail here (the cache took the memory): the steps
            // then pick their kernels as they come.
            LOG.warn("{}: cuBLAS kernels not picked ahead: {}", device.description(), e.getMessage());
        }
    }

    @Override
    public SequenceState newSequence(StateStore cacheStore, int slot) {
        return SequenceState.inSlot(loaded.config().blocks().size(), slot);
    }

    @Override
    public List<Batch.Output> forward(Batch batch) {
        return step.forward(batch);
    }

    /**
     * Unless {@code -Dcoil.cuda.runAhead=false}: greedy tokens when the model's logits divisor is
     * positive (else they come back as logits), drawn tokens when draws are made on the device
     * ({@link #SAMPLING_PROPERTY}). The engine then queues decode step n+1, its tokens taken from
     * step n's on the device, before it reads step n.
     */
    @Override
    public boolean feedsTokensOnDevice(Batch.Logits logits) {
        return runAhead && switch (logits) {
            case GREEDY -> loaded.config().logitsDivisor() > 0f;
            case SAMPLE -> deviceSampling;
            default -> false;
        };
    }

    /**
     * With sampling on the device, a fed step's draw may come after its forward pass is queued
     * (GpuStep: the step's draw is launched by {@code Submitted.draw}), unless {@link #DRAW_LATER_PROPERTY}
     * is false.
     */
    @Override
    public boolean drawsLater() {
        return deviceSampling && drawLater;
    }

    /** With sampling on the device, the log-probabilities of a drawn token are computed there too. */
    @Override
    public boolean drawsLogprobs() {
        return deviceSampling;
    }

    /** Prompt logprobs are computed where the logits are, unless {@link #PROMPT_SCORING_PROPERTY} is false. */
    @Override
    public boolean scoresPrompts() {
        return promptScoring;
    }

    @Override
    public Submitted submit(Batch batch) {
        return step.submit(batch);
    }

    /** Host time per step so far: preparing, queueing, waiting for the device, reading results. */
    public String stepProfile() {
        return step == null ? "no steps" : step.profile();
    }

    /** The traced decode steps' per-kernel median µs ({@link #TRACE_PROPERTY}), or null when none were traced. */
    public String stepTrace() {
        return step == null ? null : step.traceReport();
    }

    /** Steps so far whose tokens were fed from the step before on the device ({@link #feedsTokensOnDevice}). */
    public long fedSteps() {
        return step == null ? 0 : step.fedSteps();
    }

    /** Steps so far whose draws were queued after their forward pass ({@link #drawsLater}). */
    public long stepsDrawnLater() {
        return step == null ? 0 : step.stepsDrawnLater();
    }

    /** Decode steps replayed from a CUDA graph so far. */
    public long graphReplays() {
        return step == null ? 0 : step.replays();
    }

    @Override
    public void close() {
        device.makeCurrent();
        if (step != null) {
            step.close();
        }
        kernels.close();
        weights.close();
        device.close();
    }
}
