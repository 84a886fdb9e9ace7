package dev.coil.engine.runner;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.StateStore;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.SequenceState;
import java.util.List;

/**
 * Where the serving engine's forward steps run: the CPU ({@link CpuBackend}) or a GPU. A backend
 * owns the memory its cache lives in and runs a {@link Batch} (the new tokens of several
 * sequences) as one step. The engine is single-threaded over it: one step at a time.
 */
public interface Backend extends AutoCloseable {

    /** What runs the steps, for logs and benchmark output ("cpu, 16 threads", "cuda:0 (NVIDIA H100 80GB HBM3)"). */
    String description();

    /**
     * True when a step computes each row the same way whatever rows share it ({@code
     * --batch-invariant}, given when the backend is opened): an engine in that mode refuses a backend
     * that is not, and the reverse. False by default.
     */
    default boolean batchInvariant() {
        return false;
    }

    /** Free memory of the device the cache will live in: what a --cache-memory fraction is of. */
    long freeMemoryBytes();

    /** The cache's memory: sizing.blocks() K/V blocks and sizing.slots() state slots. */
    StateStore newStateStore(CacheSizing sizing);

    /**
     * Readies the backend for steps of up to {@code maxStepRows} rows (prompt tokens and decodes
     * together) before the first request, once the cache is made: a GPU backend has cuBLAS pick its
     * products' kernels here, which would otherwise hold up the first steps of each size. Nothing
     * by default.
     */
    default void prepare(int maxStepRows) {
    }

    /** A sequence whose K/V and Mamba state live in {@code store}, its state in slot {@code slot}. */
    SequenceState newSequence(StateStore store, int slot);

    /** One step: appends each segment's tokens to its sequence and returns, per segment, what it asked for. */
    List<Batch.Output> forward(Batch batch);

    /**
     * True when {@link #submit} queues a step and returns before it has run, and picks the tokens
     * of {@code logits} segments (GREEDY or SAMPLE) on the device, where a {@linkplain
     * Batch.Segment#fed() fed} segment of the next submitted batch takes them: the engine may then
     * queue step n+1 before it reads step n.
     */
    default boolean feedsTokensOnDevice(Batch.Logits logits) {
        return false;
    }

    /**
     * True when a SAMPLE segment whose {@link Batch.Draw#logprobs() draw asks for logprobs} gets its
     * token back with them ({@link Batch.Output#logprobs()}) instead of its logits, so that a request
     * with logprobs is drawn where the logits are too.
     */
    default boolean drawsLogprobs() {
        return false;
    }

    /**
     * True when a fed SAMPLE segment may carry {@link Batch.Draw#LATER}: {@link #submit} then queues the
     * step's forward pass, and the step's draw is queued by {@link Submitted#draw} with the draws the
     * engine makes once it has read the step before (so that a request whose draw depends on its last
     * token, a grammar's or penalties', still has its next step queued ahead).
     */
    default boolean drawsLater() {
        return false;
    }

    /**
     * True when a prompt chunk whose request wants prompt logprobs may come as a scored segment
     * ({@link Batch.Segment#scored}): the backend computes each row's log-probabilities, rank and top
     * tokens where the logits are and returns them ({@link Batch.Output#scored()}) with the last row's
     * logits only, instead of every row's logits.
     */
    default boolean scoresPrompts() {
        return false;
    }

    /**
     * One step, as {@link #forward}, whose outputs are read with {@link Submitted#outputs()}. Steps are
     * submitted and read in the same order, each read once; the sequences advance at submission.
     * By default the step runs here and now.
     */
    default Submitted submit(Batch batch) {
        List<Batch.Output> outputs = forward(batch);
        return () -> outputs;
    }

    /** A submitted step. */
    @FunctionalInterface
    interface Submitted {

        /** Waits for the step and returns, per segment, what it asked for. */
        List<Batch.Output> outputs();

        /**
         * Queues the draw of a step submitted with {@link Batch.Draw#LATER} draws ({@link #drawsLater}):
         * per segment, the draw of each such segment (null: the row's argmax, for a request that ended
         * meanwhile), null for the others. Called once, before {@link #outputs()}; a step read without it
         * takes every later row's argmax.
         */
        default void draw(List<Batch.Draw> draws) {
            throw new UnsupportedOperationException("this backend draws no step later");
        }
    }

    @Override
    void close();
}
