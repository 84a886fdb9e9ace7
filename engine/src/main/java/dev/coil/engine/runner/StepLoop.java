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
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
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
 */
final class StepLoop implements Runnable {

    private static final Logger LOG = LoggerFactory.getLogger(StepLoop.class);

    /** A request's engine-side state: what the scheduler tracks and the model sequence it runs on. */
    private static final class Entry {
        final ActiveRequest active;
        final ScheduledRequest scheduled;
        SequenceState sequence;
        int sequenceSlot = -1;

        Entry(ActiveRequest active, ScheduledRequest scheduled) {
            this.active = active;
            this.scheduled = scheduled;
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
                admitSubmissions();
                handleCancellations();
                if (scheduler.isIdle()) {
                    stats = snapshotStats();
                    awaitWork();
                    continue;
                }
                step();
                stats = snapshotStats();
            }
        } catch (Throwable e) {
            LOG.error("the engine's step loop failed", e);
        } finally {
            admitSubmissions();
            for (Entry entry : List.copyOf(entries.values())) {
                scheduler.cancel(entry.scheduled);
                end(entry, EngineEvent.Failed.Reason.CANCELLED, "the engine stopped before the request finished");
            }
            stats = snapshotStats();
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
                    !active.wantsPromptLogprobs());
            entries.put(scheduled, new Entry(active, scheduled));
            scheduler.add(scheduled);
        }
        waitingInScheduler = scheduler.waiting();
    }

    private void handleCancellations() {
        for (Entry entry : List.copyOf(entries.values())) {
            if (entry.active.cancelRequested()) {
                scheduler.cancel(entry.scheduled);
                end(entry, EngineEvent.Failed.Reason.CANCELLED, "the request was cancelled");
            }
        }
    }

    private void step() {
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
            return;
        }

        List<Batch.Segment> segments = new ArrayList<>(plan.chunks().size());
        List<Entry> scheduled = new ArrayList<>(plan.chunks().size());
        for (StepPlan.Chunk chunk : plan.chunks()) {
            Entry entry = entries.get(chunk.request());
            segments.add(segment(entry, chunk));
            scheduled.add(entry);
        }
        List<Batch.Output> outputs;
        try {
            outputs = backend.forward(new Batch(segments));
        } catch (RuntimeException e) {
            LOG.error("a step of {} requests failed", scheduled.size(), e);
            for (Entry entry : scheduled) {
                scheduler.cancel(entry.scheduled);
                end(entry, EngineEvent.Failed.Reason.ERROR, "internal error: " + e.getMessage());
            }
            return;
        }
        scheduler.complete(plan);
        int vocab = config.vocabSize();
        for (int i = 0; i < plan.chunks().size(); i++) {
            StepPlan.Chunk chunk = plan.chunks().get(i);
            Entry entry = scheduled.get(i);
            try {
                deliver(entry, chunk, segments.get(i), outputs.get(i), vocab);
            } catch (RuntimeException e) {
                LOG.error("request {} failed", entry.active.id(), e);
                scheduler.cancel(entry.scheduled);
                end(entry, EngineEvent.Failed.Reason.ERROR, "internal error: " + e.getMessage());
            }
        }
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
        if (entry.sequence.length() != chunk.start()) {
            throw new IllegalStateException(active.id() + ": sequence at " + entry.sequence.length()
                    + " but the chunk starts at " + chunk.start());
        }
        entry.sequence.setBlockTable(request.blockTable());
        active.markScheduled();
        int clamped = Math.clamp(request.promptLength() - chunk.start(), 0, chunk.count());
        boolean promptLogits = active.wantsPromptLogprobs() && chunk.start() < request.promptLength();
        Batch.Draw draw = null;
        Batch.Logits wanted = promptLogits ? Batch.Logits.ALL
                : !chunk.samples() ? Batch.Logits.NONE
                : active.needsOnlyGreedyToken() ? Batch.Logits.GREEDY
                : (draw = active.nextDraw()) != null ? Batch.Logits.SAMPLE : Batch.Logits.LAST;
        if (chunk.count() > 1 || clamped > 0) {
            if (hasAttention) {
                active.addPath(ActiveRequest.FLASH);
            }
            if (hasMamba) {
                active.addPath(ActiveRequest.SSD_SCAN);
            }
        } else if (hasMamba) {
            active.addPath(ActiveRequest.SSM_RECURRENCE);
        }
        return new Batch.Segment(entry.sequence, request.tokens(chunk.start(), chunk.end()), clamped, wanted, draw);
    }

    /** Hands a chunk's logits to its request: prompt logprobs, then the next token when the chunk reached the end. */
    private void deliver(Entry entry, StepPlan.Chunk chunk, Batch.Segment segment, Batch.Output output, int vocab) {
        float[] logits = output.logits();
        if (logits == null && (segment.logits() == Batch.Logits.GREEDY || segment.logits() == Batch.Logits.SAMPLE)) {
            if (output.token() < 0) {
                throw new IllegalStateException("the logits hold NaN or +infinity, or are all -infinity");
            }
            if (entry.active.acceptNextToken(output.token())) {
                scheduler.finish(entry.scheduled);
                entries.remove(entry.scheduled);
            } else {
                entry.scheduled.appendToken();
            }
            return;
        }
        if (logits == null) {
            return;
        }
        float[] last = logits;
        if (segment.logits() == Batch.Logits.ALL) {
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
