package dev.coil.engine.sched;

/**
 * The cache as the scheduler sees it: blocks and state slots to hand out, and the prefix cache to
 * consult. The scheduler decides who runs; this decides what memory they get.
 */
public interface CacheResources {

    /** Tokens per KV block. */
    int blockSize();

    /** True when there is a state slot to give (always, for a model without Mamba layers). */
    boolean hasFreeSlot();

    /** Gives {@code request} a state slot (reset to the start-of-sequence state). */
    void acquireSlot(ScheduledRequest request);

    /**
     * Adds blocks so that {@code request}'s table covers positions [0, positions); false, adding
     * none, when too few blocks are free.
     */
    boolean ensureBlocks(ScheduledRequest request, int positions);

    /**
     * Restores the longest cached prefix of {@code request}'s tokens into its blocks and slot, leaving
     * at least one token to compute; returns the number of positions restored (0 on a miss).
     */
    int restorePrefix(ScheduledRequest request);

    /**
     * The chunk length to run from position {@code start}, at most {@code count}: the prefix cache
     * may end a prompt chunk early at a position where it snapshots the Mamba state.
     */
    int limitChunk(ScheduledRequest request, int start, int count);

    /** Positions [from, to) of {@code request} were just computed: index full blocks, snapshot state. */
    void computed(ScheduledRequest request, int from, int to);

    /** {@code request} finished normally: keep what the next turn of a chat can reuse. */
    void finished(ScheduledRequest request);

    /** Returns every block and the slot of {@code request} (finish, cancel, preemption). */
    void releaseAll(ScheduledRequest request);

    /** Blocks a sequence of {@code positions} tokens needs, and whether the pool could ever hold them. */
    boolean couldEverHold(int positions);
}
