package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.DecodeGraphs;
import dev.coil.engine.gpu.DecodeTrace;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.PinnedBuffer;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.runner.Backend;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One serving step on the device, {@code HybridModel.forward(ops, batch)}'s twin:
 * <pre>
 *   h = E[ids] · embeddingMultiplier                       (all rows of all sequences)
 *   for each block:  h = h + mixer(rmsnorm(h)) · residualMultiplier
 *   logits = lm_head(rmsnorm_final(h[wanted rows])) / logitsDivisor
 * </pre>
 * with the sequences' K/V and Mamba states in a {@link DeviceStateStore}. A step of decodes only
 * is padded to a bucket and replayed from a CUDA graph once captured ({@link DecodeGraphs}).
 */
final class GpuStep implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(GpuStep.class);

    private final ModelConfig config;
    private final GpuWeights weights;
    private final DeviceKernels kernels;
    private final DeviceStateStore store;
    private final DecodeGraphs graphs;
    private final int maxGraphRows;
    private final boolean deviceSampling;
    private final StepSampling sampling;
    private final StepScoring scoring;
    /** A one-sequence decode step as one persistent launch, or null where the model is outside its reach. */
    private final PersistentDecode persistent;
    /** Two sides, used in turn, so that one step can be queued while the host reads the one before. */
    private final Side[] sides;
    private int nextSide;
    /** Submitted steps whose outputs were not read yet: at most two. */
    private int unread;
    /**
     * The last submitted step's tokens on the device ("model.tokens", or the drawn tokens when it
     * drew), or null when it picked none there.
     */
    private DeviceBuffer previousTokens;
    /** Steps so far whose draws came after their forward pass was queued (Batch.Draw.LATER). */
    private long stepsDrawnLater;
    /** The last submitted step while its draws are to come (Batch.Draw.LATER): no step is queued before them. */
    private Submitted undrawn;
    /** Per segment of the last submitted batch: the row of its chosen token in previousTokens, or -1. */
    private int[] previousTokenRows = new int[0];
    private PinnedBuffer logitsHost;
    private long pinnedAllocations;
    private boolean graphsFailed;
    private long replays;
    private long fedSteps;
    private long persistentSteps;
    private long steps;
    private long prepareNanos;
    private long launchNanos;
    /** The last steps with a prompt chunk: the host's µs queueing their work, and (timed) the device's. */
    private final ArrayDeque<Double> promptQueueMicros = new ArrayDeque<>();
    private final ArrayDeque<Double> promptDeviceMicros = new ArrayDeque<>();
    /** How many of those the profile keeps, so that a server running for days does not hoard them. */
    private static final int PROMPT_TIMINGS_KEPT = 1024;
    private long waitNanos;
    private long splitNanos;
    private long replayLaunchNanos;
    private double replayDeviceMillis;
    /** Whether replays are timed on the device ({@link GpuBackend#STEP_TIMING_PROPERTY}). */
    private final boolean timeReplays = Boolean.getBoolean(GpuBackend.STEP_TIMING_PROPERTY);
    /**
     * Replays before tracing starts ({@link GpuBackend#TRACE_PROPERTY}): the JVM and the clocks warm;
     * {@code -Dcoil.cuda.traceAfter=N} to trace a later stretch (a later concurrency level of a benchmark).
     */
    static final int TRACE_AFTER = Integer.getInteger("coil.cuda.traceAfter", 32);
    /**
     * Inputs, one-row greedy tokens, draw settings and drawn tokens through pinned memory the kernels
     * reach ({@link GpuBackend#HOST_MAPPED_PROPERTY}).
     */
    private static final boolean HOST_MAPPED = !"false".equalsIgnoreCase(
            System.getProperty(GpuBackend.HOST_MAPPED_PROPERTY, "true"));
    private final int traceSteps = Integer.getInteger(GpuBackend.TRACE_PROPERTY, 0);
    private DecodeTrace trace;
    private long tracedFrom = -1;
    private String traceReport;

    GpuStep(ModelConfig config, GpuWeights weights, DeviceKernels kernels, DeviceStateStore store,
            boolean useGraphs, int maxGraphRows, boolean deviceSampling) {
        this.config = config;
        this.weights = weights;
        this.kernels = kernels;
        this.store = store;
        this.graphs = useGraphs ? new DecodeGraphs() : null;
        this.maxGraphRows = maxGraphRows;
        this.deviceSampling = deviceSampling;
        this.sampling = new StepSampling(config, kernels, HOST_MAPPED);
        this.scoring = new StepScoring(config, kernels);
        kernels.device.makeCurrent();
        this.sides = new Side[] {new Side(0), new Side(1)};
        this.persistent = kernels.batchInvariant ? null : PersistentDecode.create(config, weights, kernels, store);
    }

    /**
     * Where the host's time per step went so far, in µs: preparing the inputs, queueing the work
     * (launches or a graph replay), waiting for the device, reading the results.
     */
    String profile() {
        double n = Math.max(1, steps);
        double r = Math.max(1, replays);
        String trace = persistent != null ? persistent.traceReport() : null;
        return String.format("%d steps (%d fed on the device, %d replayed from %s, one-sequence decodes %s), µs per"
                + " step: prepare %.0f, queue %.0f, wait %.0f, read %.0f; per replayed step: graph launch %.0f µs on the"
                + " host, %s on the device", steps, fedSteps, replays,
                graphs == null ? "no graphs" : graphs.captures() + " graphs captured (all dropped " + graphs.drops()
                        + " times by a reallocation)",
                persistent != null ? "in one persistent launch" : "launch by launch",
                prepareNanos / n / 1e3,
                launchNanos / n / 1e3, waitNanos / n / 1e3, splitNanos / n / 1e3, replayLaunchNanos / r / 1e3,
                timeReplays ? String.format("%.0f µs", replayDeviceMillis / r * 1e3) : "not timed")
                + String.format("; steps with a prompt chunk: %d, median µs: queue %.0f on the host, %s on the device",
                promptQueueMicros.size(), median(promptQueueMicros),
                timeReplays ? String.format("%.0f", median(promptDeviceMicros)) : "not timed")
                + String.format("; cuBLAS%s: %d products, %.1f µs of host time each%s",
                        kernels.cublas().usesLt() ? "Lt" : "", kernels.cublas().calls(),
                        kernels.cublas().callNanos() / 1e3 / Math.max(1, kernels.cublas().calls()),
                        kernels.cublas().usesLt()
                                ? String.format(", %d algorithm searches", kernels.cublas().algorithmSearches()) : "")
                + (trace != null ? "; " + trace : "");
    }

    private static double median(ArrayDeque<Double> values) {
        if (values.isEmpty()) {
            return 0;
        }
        List<Double> sorted = values.stream().sorted().toList();
        return sorted.get(sorted.size() / 2);
    }

    private static void keep(ArrayDeque<Double> values, double value) {
        if (values.size() == PROMPT_TIMINGS_KEPT) {
            values.removeFirst();
        }
        values.addLast(value);
    }

    /** The traced steps' report ({@link GpuBackend#TRACE_PROPERTY}), or null. */
    String traceReport() {
        return traceReport;
    }

    /** Decode steps served by replaying a graph so far. */
    long replays() {
        return replays;
    }

    /** Whether decode steps of one sequence run as one persistent launch ({@link PersistentDecode}). */
    boolean persistent() {
        return persistent != null;
    }

    /** Steps queued so far as one persistent launch (replays of a captured one not counted). */
    long persistentSteps() {
        return persistentSteps;
    }

    /** Steps so far whose draws were queued after their forward pass ({@link Batch.Draw#LATER}). */
    long stepsDrawnLater() {
        return stepsDrawnLater;
    }

    /** Steps so far that took some of their tokens from the step before on the device. */
    long fedSteps() {
        return fedSteps;
    }

    List<Batch.Output> forward(Batch batch) {
        return submit(batch).outputs();
    }

    /**
     * Queues one step and returns before it has run; the sequences advance now. A fed segment takes
     * the token the previous submitted batch chose for its segment (greedy or drawn), on the device. At most two
     * steps are unread at a time, and only a step that returns no logits may be queued behind another.
     */
    Submitted submit(Batch batch) {
        long start = System.nanoTime();
        kernels.device.makeCurrent();
        if (unread >= 2) {
            throw new IllegalStateException("two steps are queued already: read the first one's outputs");
        }
        if (undrawn != null) {
            throw new IllegalStateException("the step before waits for its draws: a step is queued after them");
        }
        for (int s = 0; s < batch.size(); s++) {
            if (batch.segment(s).fed()) {
                continue;
            }
            for (int id : batch.segment(s).tokens()) {
                if (id < 0 || id >= config.vocabSize()) {
                    throw new IllegalArgumentException(
                            "token id " + id + " is outside the vocabulary [0, " + config.vocabSize() + ")");
                }
            }
        }
        boolean decodesOnly = true;
        int longest = 1;
        for (int s = 0; s < batch.size() && decodesOnly; s++) {
            decodesOnly = StepLayout.isDecode(batch, s);
            longest = Math.max(longest, batch.segment(s).sequence().length() + 1);
        }
        boolean graphed = graphs != null && !graphsFailed && decodesOnly && batch.size() <= maxGraphRows;
        StepLayout layout = graphed
                ? StepLayout.of(batch, store.blockSize(), store.paddingSlot(), store.paddingBlock(),
                        DecodeGraphs.bucket(batch.size()),
                        DecodeGraphs.tableStride(Math.ceilDiv(longest, store.blockSize())))
                : StepLayout.of(batch, store.blockSize(), store.paddingSlot(), store.paddingBlock(), 0, 0);

        int logitRows = logitRows(layout);
        boolean logitsBack = needsLogits(layout);
        if (logitsBack && unread > 0) {
            throw new IllegalStateException("a step that returns logits is queued only once the steps before it are read");
        }
        int[] feed = feedPairs(layout);
        boolean picksGreedy = config.logitsDivisor() > 0f && logitRows > 0;
        boolean draws = deviceSampling && layout.anySegment(segment -> segment.logits() == Batch.Logits.SAMPLE);
        // A greedy token lm_head's launch makes is written to this side's pinned memory by that launch.
        boolean tokenToHostByLmHead = HOST_MAPPED && picksGreedy && !draws && tokenFromLmHead(layout, logitRows);
        Side side = sides[nextSide];
        int tokenAddressAt = tokenAddressOffset(layout);
        ensurePinned(side, 4L * (tokenAddressAt + 2), 4L * logitRows * config.vocabSize(), 4L * logitRows);
        MemorySegment.copy(layout.packed, 0, side.staging.segment(), ValueLayout.JAVA_INT, 0, layout.packed.length);
        MemorySegment.copy(feed, 0, side.staging.segment(), ValueLayout.JAVA_INT, 4L * layout.packed.length,
                feed.length);
        side.staging.segment().set(ValueLayout.JAVA_LONG_UNALIGNED, 4L * tokenAddressAt,
                tokenToHostByLmHead ? side.tokensHost.address() : 0L);
        // Room for the feed pairs always, so that the buffer (which captured graphs read) keeps its size.
        DeviceBuffer inputs = kernels.scratch.floats("step.inputs", tokenAddressAt + 2L);
        if (feed.length > 0) {
            fedSteps++;
        }
        if (!HOST_MAPPED) {
            inputs.copyFromAsync(side.staging, 0, 0, 4L * (tokenAddressAt + 2), kernels.stream);
        }
        kernels.argmax.enter(kernels.stream, side.staging, HOST_MAPPED ? tokenAddressAt + 2 : 0, inputs,
                feed.length > 0 ? previousTokens : null, layout.packed.length, feed.length / 2, layout.idsOffset());
        long prepared = System.nanoTime();

        boolean replayed = false;
        if (graphed) {
            DecodeGraphs.Key key = new DecodeGraphs.Key(layout.rows, layout.tableStride);
            if (timeReplays) {
                side.timing();
                side.replayStart.record(kernels.stream);
            }
            if (traceSteps > 0 && tracedFrom < 0 && replays == TRACE_AFTER) {
                trace = new DecodeTrace(kernels.device.kernels());
                trace.start(kernels.stream);
                tracedFrom = replays;
            }
            long beforeReplay = System.nanoTime();
            replayed = graphs.replay(key, allocations(), kernels.stream);
            if (replayed) {
                replayLaunchNanos += System.nanoTime() - beforeReplay;
                if (timeReplays) {
                    side.replayEnd.record(kernels.stream);
                }
                replays++;
            } else {
                long before = allocations();
                run(layout, inputs, logitRows);
                if (allocations() == before) {
                    capture(key, layout, inputs, logitRows);
                }
            }
        } else {
            if (timeReplays && !layout.decodesOnly()) {
                side.timing();
                side.replayStart.record(kernels.stream);
            }
            run(layout, inputs, logitRows);
            if (timeReplays && !layout.decodesOnly()) {
                side.replayEnd.record(kernels.stream);
            }
        }
        boolean scores = layout.anySegment(segment -> segment.scoring() != null);
        if (logitsBack) {
            copyLogitsBack(layout, logitRows, scores);
        }
        if (scores) {
            // Before a draw divides and rewrites the logits.
            scoring.score(layout, logitRows, side.index);
        }
        previousTokens = null;
        if (picksGreedy) {
            previousTokens = kernels.scratch.floats("model.tokens", logitRows);
            // A drawing step's tokens reach the host from the draw.
            if (!tokenToHostByLmHead && !draws) {
                previousTokens.copyToAsync(side.tokensHost, 0, 0, 4L * logitRows, kernels.stream);
            }
        }
        // A step with draws to come later (Batch.Draw.LATER) is drawn by Submitted.draw.
        boolean drawsLater = draws && layout.anySegment(Batch.Segment::drawnLater);
        DeviceBuffer argmax = previousTokens;
        if (draws && !drawsLater) {
            // Every row's token (the argmax for rows that are not drawn), over the greedy ones.
            previousTokens = sampling.draw(layout, logitRows, side.tokensHost, side.index, previousTokens);
        }
        if (!drawsLater) {
            side.done.record(kernels.stream);
        }
        previousTokenRows = tokenRows(layout, picksGreedy, draws);
        for (int s = 0; s < batch.size(); s++) {
            batch.segment(s).sequence().advance(batch.tokens(s));
        }
        nextSide ^= 1;
        unread++;
        long launched = System.nanoTime();
        steps++;
        prepareNanos += prepared - start;
        launchNanos += launched - prepared;
        if (!layout.decodesOnly()) {
            keep(promptQueueMicros, (launched - prepared) / 1e3);
        }
        Submitted submitted = new Submitted(layout, side, replayed, argmax);
        if (drawsLater) {
            previousTokens = null; // the draw's, once it is queued
            undrawn = submitted;
            stepsDrawnLater++;
        }
        return submitted;
    }

    /** A queued step: its outputs once the device is done with it. */
    final class Submitted implements Backend.Submitted {
        private final StepLayout layout;
        private final Side side;
        private final boolean replayed;
        /** With draws to come ({@link #draw}): the rows' greedy tokens the step made, or null. */
        private final DeviceBuffer argmax;
        private boolean read;

        private Submitted(StepLayout layout, Side side, boolean replayed, DeviceBuffer argmax) {
            this.layout = layout;
            this.side = side;
            this.replayed = replayed;
            this.argmax = argmax;
        }

        /** Queues the step's draw with the draws made since it was submitted; its tokens feed the next step. */
        @Override
        public void draw(List<Batch.Draw> draws) {
            if (undrawn != this) {
                throw new IllegalStateException("this step has no draw to come");
            }
            if (draws.size() != layout.batch.size()) {
                throw new IllegalArgumentException(draws.size() + " draws for " + layout.batch.size() + " segments");
            }
            undrawn = null;
            kernels.device.makeCurrent();
            try {
                previousTokens = sampling.draw(layout, draws, logitRows(layout), side.tokensHost, side.index, argmax);
            } finally {
                side.done.record(kernels.stream);
            }
        }

        @Override
        public List<Batch.Output> outputs() {
            if (read) {
                throw new IllegalStateException("a step's outputs are read once");
            }
            if (undrawn == this) {
                // Read without its draws: every row's argmax.
                draw(Collections.nCopies(layout.batch.size(), null));
            }
            read = true;
            unread--;
            long waiting = System.nanoTime();
            kernels.device.makeCurrent();
            side.done.synchronize();
            long done = System.nanoTime();
            if (replayed && timeReplays) {
                replayDeviceMillis += side.replayEnd.millisSince(side.replayStart);
            } else if (timeReplays && !layout.decodesOnly()) {
                keep(promptDeviceMicros, side.replayEnd.millisSince(side.replayStart) * 1e3);
            }
            if (trace != null && traceReport == null && replays - tracedFrom >= traceSteps) {
                trace.stop(kernels.stream);
                kernels.stream.synchronize();
                List<DecodeTrace.Wait> waits = trace.read();
                DecodeTrace.dump(waits, System.getProperty(DecodeTrace.DUMP_PROPERTY));
                String report = DecodeTrace.medianReport(waits);
                traceReport = report != null ? report : "no steps recorded";
            }
            List<Batch.Output> outputs = split(layout, side);
            waitNanos += done - waiting;
            splitNanos += System.nanoTime() - done;
            return outputs;
        }
    }

    /**
     * Where in the step's inputs (ints) the address of the pinned int that lm_head's launch writes
     * the greedy token to sits (0: none): after the packed inputs and room for the feed pairs, on 8 bytes.
     */
    private static int tokenAddressOffset(StepLayout layout) {
        return (layout.packed.length + 2 * layout.rows + 1) & ~1;
    }

    /** True when {@link #run} makes the greedy token in lm_head's launch (one row, lm_head_argmax.cu). */
    private boolean tokenFromLmHead(StepLayout layout, int logitRows) {
        return layout.decodesOnly() && logitRows > 0 && config.logitsDivisor() > 0f
                && (persistent == null || !persistent.covers(layout))
                && kernels.matmul.gemv().supports(logitRows, weights.lmHead)
                && kernels.lmHeadArgmax.supports(logitRows, weights.lmHead);
    }

    /**
     * Pairs (row of the step's ids, row of the previous step's chosen tokens) for the fed segments,
     * flattened; empty when none is fed.
     */
    private int[] feedPairs(StepLayout layout) {
        int fed = 0;
        for (int k = 0; k < layout.order.length; k++) {
            fed += layout.segment(k).fed() ? 1 : 0;
        }
        int[] pairs = new int[2 * fed];
        int at = 0;
        for (int k = 0; k < layout.order.length; k++) {
            Batch.Segment segment = layout.segment(k);
            if (!segment.fed()) {
                continue;
            }
            int previous = segment.previousSegment();
            if (previousTokens == null || previous >= previousTokenRows.length || previousTokenRows[previous] < 0) {
                throw new IllegalStateException("segment " + layout.order[k] + " is fed from segment " + previous
                        + " of the previous step, which picked no token for it on the device");
            }
            pairs[at++] = layout.firstRow[k];
            pairs[at++] = previousTokenRows[previous];
        }
        return pairs;
    }

    /**
     * Per batch segment: the row of its chosen token in the step's tokens on the device ("model.tokens",
     * or the drawn tokens when the step drew), or -1 when it asked for none there.
     */
    private static int[] tokenRows(StepLayout layout, boolean picksGreedy, boolean draws) {
        int[] rows = new int[layout.batch.size()];
        Arrays.fill(rows, -1);
        int row = 0;
        for (int k = 0; k < layout.order.length; k++) {
            Batch.Segment segment = layout.segment(k);
            int wanted = layout.decodesOnly() ? 1 : wantedRows(segment);
            if ((picksGreedy || draws) && segment.logits() == Batch.Logits.GREEDY
                    || draws && segment.logits() == Batch.Logits.SAMPLE) {
                rows[layout.order[k]] = row + wanted - 1;
            }
            row += wanted;
        }
        return rows;
    }

    private void capture(DecodeGraphs.Key key, StepLayout layout, DeviceBuffer inputs, int logitRows) {
        try {
            graphs.capture(key, kernels.stream, () -> run(layout, inputs, logitRows));
        } catch (RuntimeException e) {
            graphsFailed = true;
            LOG.warn("decode steps run without CUDA graphs: capturing one failed ({})", e.getMessage());
        }
    }

    private long allocations() {
        return kernels.scratch.allocations() + kernels.matmul.allocations() + pinnedAllocations
                + (persistent != null ? persistent.allocations() : 0);
    }

    /**
     * The whole step's launches on the stream: the logits of the wanted rows in "model.logits" and
     * their greedy tokens copied to pinned memory (the logits are copied by the caller when needed).
     */
    private void run(StepLayout layout, DeviceBuffer inputs, int logitRows) {
        if (persistent != null && persistent.covers(layout)) {
            persistent.run(layout, inputs);
            persistentSteps++;
            return;
        }
        int rows = layout.rows;
        int hidden = config.hiddenSize();
        long activations = (long) rows * hidden;
        DeviceBuffer h = kernels.scratch.floats("model.h", activations);
        DeviceBuffer normed = kernels.scratch.floats("model.normed", activations);
        DeviceBuffer update = kernels.scratch.floats("model.update", activations);
        kernels.embedding.launch(kernels.stream, inputs.floatSlice(layout.idsOffset(), rows), rows,
                weights.embeddings, config.embeddingMultiplier(), h);
        DeviceBuffer normed16 = kernels.scratch.bytes("model.normed16", 2 * activations);
        // A decode step of few rows keeps the residual stream in two buffers: each block's first
        // products add the previous block's update to h and write the sum to the other one (not
        // when batch-invariant: those launches exist for few rows only).
        DeviceBuffer spare = layout.decodesOnly() && rows <= GemvKernel.KERNEL_ROWS && !kernels.batchInvariant
                ? kernels.scratch.floats("model.h.spare", activations) : null;
        for (int b = 0; b < weights.blocks.size(); b++) {
            GpuWeights.Block block = weights.blocks.get(b);
            StepInput input = StepInput.blockNorm(kernels, config, block, b == 0, h, update, normed, normed16, rows,
                    spare);
            if (input.movesResidual()) {
                DeviceBuffer previous = h;
                h = spare;
                spare = previous;
            }
            switch (block.mixer()) {
                case GpuWeights.Mamba mamba -> StepMamba.forward(kernels, mamba, store, b, layout, inputs, input,
                        update);
                case GpuWeights.Attention attention -> StepAttention.forward(kernels, attention, store, b, layout,
                        inputs, input, update);
                case GpuWeights.Mlp mlp -> GpuFeedForward.forward(kernels, mlp, input, rows, update);
            }
        }
        long logitFloats = (long) logitRows * config.vocabSize();
        DeviceBuffer logits = kernels.scratch.floats("model.logits", logitFloats);
        if (layout.decodesOnly() && logitRows > 0 && kernels.matmul.gemv().supports(logitRows, weights.lmHead)) {
            // The last residual update and the final norm inside the lm_head product.
            GemvKernel.ResidualNorm finalNorm = new GemvKernel.ResidualNorm(h, update, config.residualMultiplier(),
                    null, weights.finalNorm, config.normEps());
            if (tokenFromLmHead(layout, logitRows)) {
                // One row: the greedy token in the same launch, and to the host where the inputs say.
                kernels.lmHeadArgmax.launch(kernels.stream, finalNorm, weights.lmHead, logits,
                        kernels.scratch.floats("model.tokens", logitRows),
                        inputs.floatSlice(tokenAddressOffset(layout), 2));
                return;
            }
            kernels.matmul.gemv().projectResidualNorm(kernels.stream, finalNorm, logitRows,
                    List.of(new GemvKernel.Product(weights.lmHead, logits)));
            greedyTokens(logits, logitRows);
            return;
        }
        kernels.residualAdd.launch(kernels.stream, h, update, activations, config.residualMultiplier());
        if (logitRows == 0) {
            return;
        }
        DeviceBuffer selected = h;
        if (!layout.decodesOnly()) {
            selected = kernels.scratch.floats("model.selected", (long) logitRows * hidden);
            int row = 0;
            for (int k = 0; k < layout.order.length; k++) {
                int wanted = wantedRows(layout.segment(k));
                int last = layout.firstRow[k] + layout.tokens(k);
                if (wanted > 0) {
                    selected.floatSlice((long) row * hidden, (long) wanted * hidden).copyFromAsync(
                            h.floatSlice((long) (last - wanted) * hidden, (long) wanted * hidden),
                            4L * wanted * hidden, kernels.stream);
                }
                row += wanted;
            }
        }
        DeviceBuffer finalNormed = kernels.scratch.floats("model.final", (long) logitRows * hidden);
        kernels.rmsNorm.launch(kernels.stream, selected, logitRows, hidden, weights.finalNorm, config.normEps(),
                finalNormed);
        kernels.matmul.matmul(kernels.stream, finalNormed, logitRows, weights.lmHead, logits);
        greedyTokens(logits, logitRows);
    }

    /**
     * Queues the copy of the step's logits to the host: every row, or, with scored segments, every row
     * but a scored segment's, whose last row alone comes back (for the token after the prompt).
     */
    private void copyLogitsBack(StepLayout layout, int logitRows, boolean scores) {
        long vocab = config.vocabSize();
        DeviceBuffer logits = kernels.scratch.floats("model.logits", logitRows * vocab);
        if (!scores) {
            logits.copyToAsync(logitsHost, 0, 0, 4 * logitRows * vocab, kernels.stream);
            return;
        }
        int row = 0;
        for (int k = 0; k < layout.order.length; k++) {
            Batch.Segment segment = layout.segment(k);
            int wanted = wantedRows(segment);
            int first = segment.scoring() != null ? row + wanted - 1 : row;
            int rows = segment.scoring() != null ? 1 : wanted;
            if (wanted > 0) {
                logits.copyToAsync(logitsHost, 4 * first * vocab, 4 * first * vocab, 4 * rows * vocab, kernels.stream);
            }
            row += wanted;
        }
    }

    /**
     * Each row's greedy token in "model.tokens" (with a positive logits divisor), which the caller
     * copies to the host and the next step may take its tokens from.
     */
    private void greedyTokens(DeviceBuffer logits, int logitRows) {
        if (config.logitsDivisor() > 0f) {
            // A positive divisor does not move the argmax; the tokens come from the undivided logits.
            DeviceBuffer tokens = kernels.scratch.floats("model.tokens", logitRows);
            kernels.argmax.launch(kernels.stream, logits, logitRows, config.vocabSize(), tokens);
        }
    }

    /** True when some segment needs logits back, not only a greedy token. */
    private boolean needsLogits(StepLayout layout) {
        for (int k = 0; k < layout.order.length; k++) {
            Batch.Logits wanted = layout.segment(k).logits();
            if (wanted == Batch.Logits.LAST || wanted == Batch.Logits.ALL
                    || (wanted == Batch.Logits.GREEDY && !(config.logitsDivisor() > 0f))
                    || (wanted == Batch.Logits.SAMPLE && !deviceSampling)) {
                return true;
            }
        }
        return false;
    }

    /** Rows of logits the device computes: every row of a decode step (padding included), else the wanted ones. */
    private static int logitRows(StepLayout layout) {
        if (layout.decodesOnly()) {
            return layout.rows;
        }
        int rows = 0;
        for (int k = 0; k < layout.order.length; k++) {
            rows += wantedRows(layout.segment(k));
        }
        return rows;
    }

    static int wantedRows(Batch.Segment segment) {
        return switch (segment.logits()) {
            case NONE -> 0;
            case LAST, GREEDY, SAMPLE -> 1;
            case ALL -> segment.tokens().length;
        };
    }

    /** Per batch segment, in the batch's order: its logits from pinned memory, divided by the divisor. */
    private List<Batch.Output> split(StepLayout layout, Side side) {
        PinnedBuffer tokensHost = side.tokensHost;
        int vocab = config.vocabSize();
        Batch.Output[] results = new Batch.Output[layout.batch.size()];
        Arrays.fill(results, Batch.Output.ofLogits(null));
        int row = 0;
        for (int k = 0; k < layout.order.length; k++) {
            Batch.Segment segment = layout.segment(k);
            int wanted = layout.decodesOnly() ? 1 : wantedRows(segment);
            boolean drawn = segment.logits() == Batch.Logits.SAMPLE && deviceSampling;
            if (drawn || (segment.logits() == Batch.Logits.GREEDY && config.logitsDivisor() > 0f)) {
                results[layout.order[k]] = new Batch.Output(null,
                        tokensHost.segment().get(ValueLayout.JAVA_INT, 4L * row),
                        drawn ? sampling.logprobs(side.index, row) : null);
            } else if (wanted > 0 && segment.logits() != Batch.Logits.NONE) {
                // A scored segment's rows come back as scores, with its last row's logits.
                int back = segment.scoring() != null ? 1 : wanted;
                float[] values = new float[back * vocab];
                MemorySegment.copy(logitsHost.segment(), ValueLayout.JAVA_FLOAT, 4L * (row + wanted - back) * vocab,
                        values, 0, values.length);
                if (config.logitsDivisor() != 1f) {
                    for (int i = 0; i < values.length; i++) {
                        values[i] /= config.logitsDivisor();
                    }
                }
                results[layout.order[k]] = new Batch.Output(values, -1, null,
                        segment.scoring() != null ? scoring.rows(side.index, k, wanted) : null);
            }
            row += wanted;
        }
        return Arrays.asList(results);
    }

    private void ensurePinned(Side side, long inputBytes, long logitBytes, long tokenBytes) {
        side.tokensHost = grown(side.tokensHost, tokenBytes, 1 << 12, false);
        side.staging = grown(side.staging, inputBytes, 1 << 16, false);
        logitsHost = grown(logitsHost, logitBytes, 1 << 16, true);
    }

    /** One side of the step's host buffers and events. */
    private final class Side {
        /** 0 or 1: names the device buffers this side's draw settings are copied into. */
        final int index;
        PinnedBuffer staging;
        PinnedBuffer tokensHost;
        final CudaEvent done = kernels.device.newEvent();
        CudaEvent replayStart;
        CudaEvent replayEnd;

        Side(int index) {
            this.index = index;
        }

        void timing() {
            if (replayStart == null) {
                replayStart = kernels.device.newEvent();
                replayEnd = kernels.device.newEvent();
            }
        }

        void close() {
            done.close();
            if (replayStart != null) {
                replayStart.close();
                replayEnd.close();
            }
            if (staging != null) {
                staging.close();
            }
            if (tokensHost != null) {
                tokensHost.close();
            }
        }
    }

    /**
     * {@code buffer}, or a larger one for {@code bytes} (at least {@code least}) once queued work is
     * done with the old one. {@code captured}: captured graphs copy into it, so they must go.
     */
    private PinnedBuffer grown(PinnedBuffer buffer, long bytes, long least, boolean captured) {
        PinnedBuffer grown = kernels.device.pinnedAtLeast(buffer, bytes, least);
        if (captured && grown != buffer) {
            pinnedAllocations++;
        }
        return grown;
    }

    @Override
    public void close() {
        kernels.device.makeCurrent();
        kernels.device.synchronize();
        if (graphs != null) {
            graphs.close();
        }
        for (Side side : sides) {
            side.close();
        }
        sampling.close();
        scoring.close();
        if (persistent != null) {
            persistent.close();
        }
        if (logitsHost != null) {
            logitsHost.close();
        }
    }
}
