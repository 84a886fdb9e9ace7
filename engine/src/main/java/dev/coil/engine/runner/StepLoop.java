package dev.coil.engine.runner;

import dev.coil.engine.cache.ServingCache;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.sched.ScheduledRequest;
import dev.coil.engine.sched.Scheduler;
import dev.coil.engine.sched.StepPlan;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The engine's step thread. Each step: take in new submissions and cancellations, ask the
 * {@link Scheduler} what runs, run it as one {@link Batch} through the model, sample the requests
 * whose chunk reached their last token, and publish their events.
 *
 * <p>With a backend that {@linkplain Backend#feedsTokensOnDevice feeds tokens on the device}, a
 * step whose tokens are all chosen there is followed by the same requests' next step, queued
 * before this one's tokens are read: the device goes on while the host publishes. A request that
 * turns out to have finished keeps its cache until the step queued behind it is read, whose row
 * for it is dropped. A request whose draw depends on its last token (a grammar, penalties) is
 * queued so too where the backend {@linkplain Backend#drawsLater draws later}: the step's forward
 * pass is queued at once and its draw once this step's tokens are read and its draws made, so that
 * the host's work for the draw runs while the device runs the forward pass.
 */
final class StepLoop implements Runnable {

    private static final Logger LOG = LoggerFactory.getLogger(StepLoop.class);

    /** A request's engine-side state: what the scheduler tracks and the model sequence it runs on. */
    private static final class Entry {
        final ActiveRequest active;
        final ScheduledRequest scheduled;
        SequenceState sequence;
        int sequenceSlot = -1;
        /** Finished while a step that includes it was queued: released once that step is read. */
        boolean finishing;
        /** A step with this request's next position is queued: the scheduler counts the token to come. */
        boolean countedAhead;

        Entry(ActiveRequest active, ScheduledRequest scheduled) {
            this.active = active;
            this.scheduled = scheduled;
        }
    }

    /** A step submitted to the backend whose outputs were not read yet. */
    private static final class Queued {
        final StepPlan plan;
        final List<Batch.Segment> segments;
        final List<Entry> entries;
        final Backend.Submitted submitted;
        /** The scheduler was told the plan's positions are computed. */
        boolean completed;

        /** Some segment's draw is {@link Batch.Draw#LATER}: {@link #drawLater} queues the step's draw. */
        boolean drawsLater() {
            return segments.stream().anyMatch(Batch.Segment::drawnLater);
        }

        Queued(StepPlan plan, List<Batch.Segment> segments, List<Entry> entries, Backend.Submitted submitted) {
            this.plan = plan;
            this.segments = segments;
            this.entries = entries;
            this.submitted = submitted;
        }
    }

    private final ModelConfig config;
    private final Backend backend;
    private final ServingCache cache;
    private final Scheduler scheduler;
    private final int maxWaiting;
    private final boolean hasMamba;
    private final boolean hasAttention;
    private final ConcurrentLinkedQueue<ActiveRequest> inbox = new ConcurrentLinkedQueue<>();
    private final AtomicInteger inboxSize = new AtomicInteger();
    private final Map<ScheduledRequest, Entry> entries = new IdentityHashMap<>();
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition work = lock.newCondition();
    private final Thread thread;
    private Queued queued;
    private final GrammarWalks grammarWalks = new GrammarWalks();
    private volatile boolean stopping;
    private volatile int waitingInScheduler;
    private volatile EngineStats stats;

    StepLoop(ModelConfig config, Backend backend, ServingCache cache, Scheduler scheduler, int maxWaiting) {
        this.config = config;
        this.backend = backend;
        this.cache = cache;
        this.scheduler = scheduler;
        this.maxWaiting = maxWaiting;
        this.hasMamba = config.countBlocks(BlockSpec.Mamba.class) > 0;
        this.hasAttention = config.countBlocks(BlockSpec.Attention.class) > 0;
        this.thread = Thread.ofPlatform().name("coil-engine").daemon().unstarted(this);
        this.stats = snapshotStats();
    }

    void start() {
        thread.start();
    }

    /** Queues a request for the step thread; false when the waiting queue is full. */
    boolean enqueue(ActiveRequest request) {
        if (inboxSize.get() + waitingInScheduler >= maxWaiting) {
            return false;
        }
        inboxSize.incrementAndGet();
        inbox.add(request);
        wake();
        return true;
    }

    void wake() {
        lock.lock();
        try {
            work.signal();
        } finally {
            lock.unlock();
        }
    }

    EngineStats stats() {
        return stats;
    }

    void stop() {
        stopping = true;
        wake();
        try {
            thread.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void run() {
        try {
            while (!stopping) {
                if (queued != null) {
                    Queued current = queued;
                    Set<ScheduledRequest> ending = endingAhead(current);
                    queued = ending != null ? submitAhead(current, ending) : null;
                    collect(current);
                    if (queued != null && queued.drawsLater()) {
                        drawLater(queued);
                    }
                    stats = snapshotStats();
                    continue;
                }
                admitSubmissions();
                handleCancellations();
                if (scheduler.isIdle()) {
                    stats = snapshotStats();
                    awaitWork();
                    continue;
                }
                queued = submitPlanned();
                stats = snapshotStats();
            }
        } catch (Throwable e) {
            LOG.error("the engine's step loop failed", e);
        } finally {
            if (queued != null) {
                try {
                    queued.submitted.outputs();
                } catch (RuntimeException e) {
                    LOG.warn("the last queued step failed while the engine stopped", e);
                }
            }
            admitSubmissions();
            for (Entry entry : List.copyOf(entries.values())) {
                scheduler.cancel(entry.scheduled);
                end(entry, EngineEvent.Failed.Reason.CANCELLED, "the engine stopped before the request finished");
            }
            stats = snapshotStats();
            grammarWalks.close();
        }
    }

    /**
     * Walks, several at once ({@link GrammarWalks}), the grammars of those of {@code walking} that are
     * still running and held to one: where each one's token in {@code tokens} (same order; null: none)
     * leads, or its present state where that is not walked yet. The step thread then finds them kept
     * instead of walking them one after another.
     */
    private void walkGrammars(List<Entry> walking, int[] tokens) {
        List<ActiveRequest> requests = new ArrayList<>();
        List<Integer> theirTokens = new ArrayList<>();
        for (int i = 0; i < walking.size(); i++) {
            Entry entry = walking.get(i);
            int token = tokens == null ? -1 : tokens[i];
            if (entries.get(entry.scheduled) == entry && !entry.finishing && entry.active.hasGrammarToWalk(token)) {
                requests.add(entry.active);
                theirTokens.add(token);
            }
        }
        try {
            grammarWalks.walk(requests, theirTokens.stream().mapToInt(Integer::intValue).toArray());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stopping = true;
        }
    }

    private void awaitWork() {
        lock.lock();
        try {
            if (inbox.isEmpty() && !stopping) {
                work.await(100, TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stopping = true;
        } finally {
            lock.unlock();
        }
    }

    private void admitSubmissions() {
        ActiveRequest active;
        while ((active = inbox.poll()) != null) {
            inboxSize.decrementAndGet();
            ScheduledRequest scheduled = new ScheduledRequest(active.id(), active.promptLength(), active::tokenAt,
                    !active.wantsPromptLogprobs(), active.request().priority(), active.request().cacheSalt());
            entries.put(scheduled, new Entry(active, scheduled));
            scheduler.add(scheduled);
        }
        waitingInScheduler = scheduler.waiting();
    }

    private void handleCancellations() {
        for (Entry entry : List.copyOf(entries.values())) {
            if (entry.active.cancelRequested()) {
                scheduler.cancel(entry.scheduled);
                // Whoever reads the cancellation then reads stats without the request's blocks and slot.
                stats = snapshotStats();
                end(entry, EngineEvent.Failed.Reason.CANCELLED, "the request was cancelled");
            }
        }
    }

    /** Plans a step and submits it; null when nothing could run or the submission failed. */
    private Queued submitPlanned() {
        StepPlan plan = scheduler.schedule();
        for (ScheduledRequest rejected : plan.rejected()) {
            end(entries.get(rejected), EngineEvent.Failed.Reason.REJECTED, "the request needs more KV cache than the"
                    + " server holds (" + cache.blockPool().total() * cache.blockSize() + " tokens); raise --cache-memory"
                    + " or shorten the prompt or max_tokens");
        }
        for (ScheduledRequest preempted : plan.preempted()) {
            entries.get(preempted).sequence = null;
        }
        if (plan.isEmpty()) {
            Thread.onSpinWait();
            return null;
        }

        List<Entry> sampling = new ArrayList<>();
        for (StepPlan.Chunk chunk : plan.chunks()) {
            if (chunk.samples()) {
                sampling.add(entries.get(chunk.request()));
            }
        }
        walkGrammars(sampling, null); // at their present states: the draws this step hands the backend read them
        List<Batch.Segment> segments = new ArrayList<>(plan.chunks().size());
        List<Entry> scheduled = new ArrayList<>(plan.chunks().size());
        for (StepPlan.Chunk chunk : plan.chunks()) {
            Entry entry = entries.get(chunk.request());
            segments.add(segment(entry, chunk));
            scheduled.add(entry);
        }
        return submit(plan, segments, scheduled);
    }

    /**
     * The requests of {@code current} whose token ends them (they finished, or the token is their
     * last by max_tokens) when the step after it can be queued before its tokens are read: every
     * segment's token chosen on the device (greedy, or drawn without penalties), nothing new to
     * admit or cancel. Null when it cannot.
     */
    private Set<ScheduledRequest> endingAhead(Queued current) {
        if (!inbox.isEmpty() || scheduler.waiting() > 0) {
            return null;
        }
        Set<ScheduledRequest> ending = Collections.newSetFromMap(new IdentityHashMap<>());
        for (int i = 0; i < current.entries.size(); i++) {
            Entry entry = current.entries.get(i);
            Batch.Logits logits = current.segments.get(i).logits();
            if (!current.plan.chunks().get(i).samples() || entries.get(entry.scheduled) != entry
                    || entry.active.cancelRequested() || !backend.feedsTokensOnDevice(logits)
                    || (logits == Batch.Logits.SAMPLE && !entry.active.canDrawAhead()
                            && !(backend.drawsLater() && entry.active.canDrawLater()))) {
                return null;
            }
            if (entry.finishing || !entry.active.mayContinue()) {
                ending.add(entry.scheduled);
            }
        }
        return ending.size() < current.entries.size() ? ending : null;
    }

    /**
     * Queues the step after {@code current} for its requests but {@code ending}, each token fed from
     * current's on the device; null when the scheduler cannot plan it.
     */
    private Queued submitAhead(Queued current, Set<ScheduledRequest> ending) {
        scheduler.complete(current.plan);
        current.completed = true;
        StepPlan plan = scheduler.planAhead(current.plan, ending);
        if (plan == null) {
            return null;
        }
        List<Batch.Segment> segments = new ArrayList<>(plan.chunks().size());
        List<Entry> scheduled = new ArrayList<>(plan.chunks().size());
        int source = 0;
        for (StepPlan.Chunk chunk : plan.chunks()) {
            while (current.entries.get(source).scheduled != chunk.request()) {
                source++;
            }
            Entry entry = current.entries.get(source);
            placeChunk(entry, chunk);
            addPaths(entry.active, false);
            entry.countedAhead = true;
            Batch.Logits logits = current.segments.get(source).logits();
            Batch.Draw draw = logits != Batch.Logits.SAMPLE ? null
                    : entry.active.canDrawAhead() ? entry.active.drawAhead() : Batch.Draw.LATER;
            segments.add(Batch.Segment.fedFrom(source, entry.sequence, logits, draw));
            scheduled.add(entry);
        }
        return submit(plan, segments, scheduled);
    }

    /**
     * Queues the draw of {@code step}, whose {@link Batch.Draw#LATER} segments' requests have taken
     * the tokens of the step before: each such request's draw now, or the argmax for a request that
     * ended meanwhile (its row is dropped when the step is read).
     */
    private void drawLater(Queued step) {
        List<Batch.Draw> draws = new ArrayList<>(step.segments.size());
        for (int i = 0; i < step.segments.size(); i++) {
            Entry entry = step.entries.get(i);
            Batch.Draw draw = null;
            if (step.segments.get(i).drawnLater() && entries.get(entry.scheduled) == entry && !entry.finishing) {
                try {
                    draw = entry.active.nextDraw(backend.drawsLogprobs());
                    if (draw == null) {
                        throw new IllegalStateException("no draw for a request drawn later");
                    }
                } catch (RuntimeException e) {
                    LOG.error("request {} failed", entry.active.id(), e);
                    scheduler.cancel(entry.scheduled);
                    end(entry, EngineEvent.Failed.Reason.ERROR, "internal error: " + e.getMessage());
                }
            }
            draws.add(draw);
        }
        try {
            step.submitted.draw(draws);
        } catch (RuntimeException e) {
            fail(step.entries, e);
        }
    }

    private Queued submit(StepPlan plan, List<Batch.Segment> segments, List<Entry> scheduled) {
        try {
            return new Queued(plan, segments, scheduled, backend.submit(new Batch(segments)));
        } catch (RuntimeException e) {
            fail(scheduled, e);
            return null;
        }
    }

    /** Reads a queued step's outputs and hands each request its part. */
    private void collect(Queued step) {
        List<Batch.Output> outputs;
        try {
            outputs = step.submitted.outputs();
        } catch (RuntimeException e) {
            fail(step.entries, e);
            return;
        }
        if (!step.completed) {
            scheduler.complete(step.plan);
        }
        // Where each token chosen on the device leads: what taking it checks (and the next draw reads).
        List<Entry> choosing = new ArrayList<>();
        List<Integer> chosen = new ArrayList<>();
        for (int i = 0; i < outputs.size(); i++) {
            if (outputs.get(i).logits() == null && outputs.get(i).token() >= 0) {
                choosing.add(step.entries.get(i));
                chosen.add(outputs.get(i).token());
            }
        }
        walkGrammars(choosing, chosen.stream().mapToInt(Integer::intValue).toArray());
        int vocab = config.vocabSize();
        for (int i = 0; i < step.plan.chunks().size(); i++) {
            StepPlan.Chunk chunk = step.plan.chunks().get(i);
            Entry entry = step.entries.get(i);
            if (entries.get(entry.scheduled) != entry) {
                continue; // ended while the step was queued
            }
            if (entry.finishing) {
                // Its last token came with the step before; this step ran its row ahead of knowing.
                scheduler.finish(entry.scheduled);
                entries.remove(entry.scheduled);
                continue;
            }
            try {
                boolean countedAhead = entry.countedAhead;
                entry.countedAhead = false;
                deliver(entry, chunk, step.segments.get(i), outputs.get(i), vocab, countedAhead);
            } catch (RuntimeException e) {
                LOG.error("request {} failed", entry.active.id(), e);
                scheduler.cancel(entry.scheduled);
                end(entry, EngineEvent.Failed.Reason.ERROR, "internal error: " + e.getMessage());
            }
        }
    }

    private void fail(List<Entry> scheduled, RuntimeException e) {
        LOG.error("a step of {} requests failed", scheduled.size(), e);
        for (Entry entry : scheduled) {
            if (entries.get(entry.scheduled) == entry) {
                scheduler.cancel(entry.scheduled);
                end(entry, EngineEvent.Failed.Reason.ERROR, "internal error: " + e.getMessage());
            }
        }
    }

    /** Checks that the entry's sequence ends where the chunk starts, and gives it the request's block table. */
    private static void placeChunk(Entry entry, StepPlan.Chunk chunk) {
        if (entry.sequence.length() != chunk.start()) {
            throw new IllegalStateException(entry.active.id() + ": sequence at " + entry.sequence.length()
                    + " but the chunk starts at " + chunk.start());
        }
        entry.sequence.setBlockTable(chunk.request().blockTable());
    }

    /** The batch segment for one chunk: the request's sequence (rebuilt after an admission), its tokens. */
    private Batch.Segment segment(Entry entry, StepPlan.Chunk chunk) {
        ScheduledRequest request = chunk.request();
        ActiveRequest active = entry.active;
        if (entry.sequence == null || entry.sequenceSlot != request.slot()) {
            entry.sequence = backend.newSequence(cache.store(), request.slot());
            entry.sequence.resumeAt(chunk.start());
            entry.sequenceSlot = request.slot();
            active.setCachedPromptTokens(request.cachedPromptTokens());
        }
        placeChunk(entry, chunk);
        active.markScheduled();
        int clamped = Math.clamp(request.promptLength() - chunk.start(), 0, chunk.count());
        boolean promptLogits = active.wantsPromptLogprobs() && chunk.start() < request.promptLength();
        Batch.Draw draw = null;
        Batch.Logits wanted = promptLogits ? Batch.Logits.ALL
                : !chunk.samples() ? Batch.Logits.NONE
                : active.needsOnlyGreedyToken() ? Batch.Logits.GREEDY
                : (draw = active.nextDraw(backend.drawsLogprobs())) != null ? Batch.Logits.SAMPLE : Batch.Logits.LAST;
        addPaths(active, chunk.count() > 1 || clamped > 0);
        int[] tokens = request.tokens(chunk.start(), chunk.end());
        if (promptLogits && backend.scoresPrompts()) {
            return Batch.Segment.scored(entry.sequence, tokens, clamped, active.promptScoring(chunk.start(), chunk.count()));
        }
        return new Batch.Segment(entry.sequence, tokens, clamped, wanted, draw);
    }

    /**
     * Names the engine paths a segment of the request takes: a prompt chunk's flash attention and
     * SSD scan, or a decode's Mamba recurrence.
     */
    private void addPaths(ActiveRequest active, boolean prefill) {
        if (prefill) {
            if (hasAttention) {
                active.addPath(ActiveRequest.FLASH);
            }
            if (hasMamba) {
                active.addPath(ActiveRequest.SSD_SCAN);
            }
        } else if (hasMamba) {
            active.addPath(ActiveRequest.SSM_RECURRENCE);
        }
    }

    /**
     * Hands a chunk's logits to its request: prompt logprobs, then the next token when the chunk
     * reached the end. {@code countedAhead}: the step after this one, with this request in it, is
     * queued, and the scheduler already counts the token.
     */
    private void deliver(Entry entry, StepPlan.Chunk chunk, Batch.Segment segment, Batch.Output output, int vocab,
            boolean countedAhead) {
        float[] logits = output.logits();
        if (logits == null && (segment.logits() == Batch.Logits.GREEDY || segment.logits() == Batch.Logits.SAMPLE)) {
            if (output.token() < 0) {
                throw new IllegalStateException("the logits hold NaN or +infinity, or are all -infinity");
            }
            if (entry.active.acceptNextToken(output.token(), output.logprobs())) {
                if (countedAhead) {
                    entry.finishing = true;
                } else {
                    scheduler.finish(entry.scheduled);
                    entries.remove(entry.scheduled);
                }
            } else if (!countedAhead) {
                entry.scheduled.appendToken();
            }
            return;
        }
        if (logits == null) {
            return;
        }
        float[] last = logits;
        if (output.scored() != null) {
            entry.active.acceptScoredPromptRows(chunk.start(), output.scored()); // logits: the last row's
        } else if (segment.logits() == Batch.Logits.ALL) {
            entry.active.acceptPromptLogits(chunk.start(), logits, chunk.count(), vocab);
            last = Arrays.copyOfRange(logits, (chunk.count() - 1) * vocab, chunk.count() * vocab);
        }
        if (!chunk.samples()) {
            return;
        }
        if (entry.active.acceptNextLogits(last)) {
            scheduler.finish(entry.scheduled);
            entries.remove(entry.scheduled);
        } else {
            entry.scheduled.appendToken();
        }
    }

    private void end(Entry entry, EngineEvent.Failed.Reason reason, String message) {
        entry.active.fail(reason, message);
        entries.remove(entry.scheduled);
    }

    private EngineStats snapshotStats() {
        int kvTotal = hasAttention ? cache.blockPool().total() : 0;
        int kvInUse = hasAttention ? cache.blockPool().inUse() : 0;
        int slotsTotal = hasMamba ? cache.slotPool().total() : 0;
        int slotsInUse = hasMamba ? cache.slotPool().inUse() : 0;
        return new EngineStats(scheduler.running(), scheduler.waiting() + inboxSize.get(), kvTotal, kvInUse, slotsTotal,
                slotsInUse, cache.queries(), cache.hits(), cache.hitTokens(), cache.queryTokens(),
                scheduler.preemptions(), cache.snapshotCount());
    }
}
