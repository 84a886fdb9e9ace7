package dev.coil.engine.sched;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedList;
import java.util.List;
import java.util.ListIterator;
import java.util.Set;

/**
 * Continuous batching at the iteration level, first come first served. Each step takes the running
 * requests in admission order — one token for each decoding request, the next chunk of each
 * prefilling one — then admits waiting requests, all under a token budget and a sequence cap. A long
 * prompt is thus prefilled in chunks mixed with other requests' decodes.
 *
 * <p>When blocks run out, the newest running request is preempted: its cache is released and it
 * goes back to the head of the queue, to be recomputed (prompt and generated tokens) when
 * readmitted. No request is admitted in a step that preempted.
 *
 * <p>Under priority scheduling (vLLM's {@code --scheduling-policy priority}), the queue is kept in
 * order of priority (lower first), then of arrival, a preempted request going back to its place in
 * it, and the request a step preempts is the running one of the worst priority not yet placed in
 * the step, the newest among equals. When the queue's head cannot be admitted for want of a sequence
 * or a state slot while a running request has a strictly worse priority, that request is preempted
 * (its chunk taken out of the step), and the head is admitted in the next step.
 *
 * <p>Batch-invariant ({@code --batch-invariant}), a prompt's chunks depend on its own length alone:
 * each is the rest of the prompt or {@link #invariantChunk} tokens, whichever is fewer, and a chunk
 * that does not fit what the step has left waits whole for a later step instead of being cut to
 * fit. That chunk size leaves room for every other sequence's decode, so the first request that
 * prefills in a step always gets its chunk. (A kernel's rows then meet the same prompt chunks
 * whatever else runs; see {@code EngineOptions.batchInvariant}.)
 *
 * <p>Not thread-safe: owned by the engine's step thread.
 */
public final class Scheduler {

    private final int maxSequences;
    private final int maxBatchedTokens;
    private final CacheResources cache;
    /** The prompt chunk of a batch-invariant step (0: chunks cut to the step's budget). */
    private final int invariantChunk;
    /** Priority, then arrival: the order of the queue under priority scheduling. */
    private static final Comparator<ScheduledRequest> BY_PRIORITY = Comparator.comparingInt(ScheduledRequest::priority)
            .thenComparingLong(ScheduledRequest::arrival);

    private final boolean byPriority;
    private final LinkedList<ScheduledRequest> waiting = new LinkedList<>();
    private final List<ScheduledRequest> running = new ArrayList<>();
    private long preemptions;
    private long arrivals;

    public Scheduler(int maxSequences, int maxBatchedTokens, CacheResources cache) {
        this(maxSequences, maxBatchedTokens, cache, false);
    }

    /** As above; {@code batchInvariant}: prompt chunks cut by their own length alone. */
    public Scheduler(int maxSequences, int maxBatchedTokens, CacheResources cache, boolean batchInvariant) {
        this(maxSequences, maxBatchedTokens, cache, batchInvariant, false);
    }

    /** As above; {@code byPriority}: requests taken by priority, then arrival (else first come first served). */
    public Scheduler(int maxSequences, int maxBatchedTokens, CacheResources cache, boolean batchInvariant,
            boolean byPriority) {
        if (maxSequences <= 0 || maxBatchedTokens < maxSequences) {
            throw new IllegalArgumentException("need max sequences > 0 and max batched tokens >= max sequences, got "
                    + maxSequences + " and " + maxBatchedTokens);
        }
        this.maxSequences = maxSequences;
        this.maxBatchedTokens = maxBatchedTokens;
        this.cache = cache;
        this.invariantChunk = batchInvariant ? maxBatchedTokens - (maxSequences - 1) : 0;
        this.byPriority = byPriority;
    }

    /**
     * The tokens of a batch-invariant prompt chunk: the step's budget less one decode for each other
     * sequence it may hold (0 when not batch-invariant).
     */
    public int invariantChunk() {
        return invariantChunk;
    }

    /**
     * The tokens {@code request} computes next from {@code start}, with {@code budget} left in the
     * step; -1 when a batch-invariant chunk does not fit it.
     */
    private int chunk(ScheduledRequest request, int start, int budget) {
        int rest = request.tokenCount() - start;
        if (invariantChunk == 0) {
            return cache.limitChunk(request, start, Math.min(rest, budget));
        }
        int count = Math.min(rest, invariantChunk);
        return count <= budget ? count : -1;
    }

    public void add(ScheduledRequest request) {
        request.setArrival(arrivals++);
        if (byPriority) {
            enqueueInOrder(request);
        } else {
            waiting.add(request);
        }
    }

    /** Puts {@code request} in the queue after every request that comes before it by priority and arrival. */
    private void enqueueInOrder(ScheduledRequest request) {
        ListIterator<ScheduledRequest> place = waiting.listIterator(waiting.size());
        while (place.hasPrevious()) {
            if (BY_PRIORITY.compare(place.previous(), request) <= 0) {
                place.next();
                break;
            }
        }
        place.add(request);
    }

    public int waiting() {
        return waiting.size();
    }

    public int running() {
        return running.size();
    }

    public boolean isIdle() {
        return waiting.isEmpty() && running.isEmpty();
    }

    public long preemptions() {
        return preemptions;
    }

    public StepPlan schedule() {
        List<StepPlan.Chunk> chunks = new ArrayList<>();
        List<ScheduledRequest> preempted = new ArrayList<>();
        List<ScheduledRequest> rejected = new ArrayList<>();
        int budget = maxBatchedTokens;

        for (int i = 0; i < running.size() && budget > 0; i++) {
            ScheduledRequest request = running.get(i);
            int count = chunk(request, request.computed(), budget);
            if (count < 0) {
                continue; // a batch-invariant chunk that waits for a step with room for it
            }
            boolean placed = true;
            while (!cache.ensureBlocks(request, request.computed() + count)) {
                // Only a request not yet placed in this step may go: this one or one after it.
                ScheduledRequest victim = byPriority
                        ? running.subList(i, running.size()).stream().max(BY_PRIORITY).orElseThrow()
                        : running.getLast();
                if (victim == request && running.size() == 1) {
                    // Alone and still out of blocks: the request outgrew the whole cache.
                    running.remove(request);
                    cache.releaseAll(request);
                    rejected.add(request);
                } else {
                    preempt(victim);
                    preempted.add(victim);
                }
                if (victim == request || rejected.contains(request)) {
                    placed = false;
                    break;
                }
            }
            if (!placed) {
                break;
            }
            chunks.add(new StepPlan.Chunk(request, request.computed(), count));
            budget -= count;
        }

        while (preempted.isEmpty() && budget > 0 && !waiting.isEmpty() && running.size() < maxSequences) {
            ScheduledRequest request = waiting.peek();
            if (!cache.couldEverHold(request.tokenCount())) {
                waiting.poll();
                rejected.add(request);
                continue;
            }
            if (!cache.hasFreeSlot()) {
                break;
            }
            cache.acquireSlot(request);
            int restored = request.usesPrefixCache() ? cache.restorePrefix(request) : 0;
            request.setComputed(restored);
            request.setCachedPromptTokens(Math.min(restored, request.promptLength()));
            int count = chunk(request, restored, budget);
            if (count < 0 || !cache.ensureBlocks(request, restored + count)) {
                cache.releaseAll(request);
                request.setComputed(0);
                request.setCachedPromptTokens(0);
                break;
            }
            waiting.poll();
            running.add(request);
            request.setAdmitted(true);
            chunks.add(new StepPlan.Chunk(request, restored, count));
            budget -= count;
        }
        if (byPriority && preempted.isEmpty()) {
            preemptForBetterPriority(chunks, preempted);
        }
        return new StepPlan(List.copyOf(chunks), List.copyOf(preempted), List.copyOf(rejected));
    }

    /**
     * Under priority scheduling: when the queue's head waits for a sequence or a state slot and a
     * running request has a strictly worse priority, preempts the worst (the newest among equals),
     * taking its chunk out of this step, so that the head is admitted in the next.
     */
    private void preemptForBetterPriority(List<StepPlan.Chunk> chunks, List<ScheduledRequest> preempted) {
        if (waiting.isEmpty() || running.isEmpty() || running.size() < maxSequences && cache.hasFreeSlot()) {
            return;
        }
        ScheduledRequest head = waiting.peek();
        ScheduledRequest victim = running.stream().max(BY_PRIORITY).orElseThrow();
        if (victim.priority() > head.priority()) {
            chunks.removeIf(chunk -> chunk.request() == victim);
            preempt(victim);
            preempted.add(victim);
        }
    }

    /**
     * The step after {@code previous}, planned before the tokens {@code previous} generates are known
     * (the backend feeds them on the device): one more position for each of its requests but those
     * in {@code ending} (whose token ends them), with the token still to come counted. Null,
     * changing nothing but blocks it added, unless nothing waits, the running requests are
     * {@code previous}'s in its order, each has just computed its last token (call {@link #complete}
     * on {@code previous} first), some go on, and each gets the block its next position needs without
     * a preemption.
     */
    public StepPlan planAhead(StepPlan previous, Set<ScheduledRequest> ending) {
        List<StepPlan.Chunk> chunks = previous.chunks();
        if (!waiting.isEmpty() || chunks.size() != running.size() || ending.size() >= chunks.size()) {
            return null;
        }
        List<ScheduledRequest> going = new ArrayList<>(chunks.size());
        for (int i = 0; i < chunks.size(); i++) {
            ScheduledRequest request = chunks.get(i).request();
            if (running.get(i) != request || request.computed() != request.tokenCount()
                    || chunks.get(i).end() != request.computed()) {
                return null;
            }
            if (!ending.contains(request)) {
                going.add(request);
            }
        }
        for (ScheduledRequest request : going) {
            if (!cache.ensureBlocks(request, request.computed() + 1)) {
                return null;
            }
        }
        List<StepPlan.Chunk> ahead = new ArrayList<>(going.size());
        for (ScheduledRequest request : going) {
            request.appendToken();
            ahead.add(new StepPlan.Chunk(request, request.computed(), 1));
        }
        return new StepPlan(List.copyOf(ahead), List.of(), List.of());
    }

    /**
     * The plan's chunks were computed: advance each request still running and let the cache index
     * what it now holds.
     */
    public void complete(StepPlan plan) {
        for (StepPlan.Chunk chunk : plan.chunks()) {
            ScheduledRequest request = chunk.request();
            if (!running.contains(request)) {
                continue; // cancelled or failed while its step was queued: its blocks are gone
            }
            request.setComputed(chunk.end());
            cache.computed(request, chunk.start(), chunk.end());
        }
    }

    /** A running request finished: what the prefix cache may keep is kept, the rest released. */
    public void finish(ScheduledRequest request) {
        if (running.remove(request)) {
            cache.finished(request);
            cache.releaseAll(request);
        }
    }

    /** Removes a request wherever it is and releases its cache. */
    public void cancel(ScheduledRequest request) {
        if (running.remove(request)) {
            cache.releaseAll(request);
        } else {
            waiting.remove(request);
        }
    }

    private void preempt(ScheduledRequest victim) {
        running.remove(victim);
        cache.releaseAll(victim);
        victim.setComputed(0);
        victim.setAdmitted(false);
        victim.countPreemption();
        if (byPriority) {
            enqueueInOrder(victim);
        } else {
            waiting.addFirst(victim);
        }
        preemptions++;
    }
}
