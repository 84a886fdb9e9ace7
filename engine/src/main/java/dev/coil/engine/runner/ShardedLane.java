package dev.coil.engine.runner;

import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.ModelConfig;
import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.parallel.ShardedModel;
import dev.coil.engine.parallel.ShardedRun;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The engine's lane for requests whose context is sharded over several devices: one thread that
 * runs one sequence at a time through the {@link ShardedModel}, its prompt prefilled sharded, then
 * one decode per generated token, while the step loop keeps batching the other requests. Its own
 * thread, so that a GPU implementation's device contexts never meet the step thread's. A request
 * here is owned by this thread as the step loop's are by the step thread; only its cancel flag is
 * touched from others, and it is read between decodes (a prefill runs to its end).
 */
final class ShardedLane implements Runnable {

    private static final Logger LOG = LoggerFactory.getLogger(ShardedLane.class);

    private final ContextParallelism parallelism;
    private final ShardedModel model;
    private final int maxWaiting;
    private final boolean hasMamba;
    private final ArrayDeque<ActiveRequest> waiting = new ArrayDeque<>(); // guarded by lock
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition work = lock.newCondition();
    private final Thread thread;
    private volatile boolean stopping;
    private volatile ActiveRequest running;

    ShardedLane(ModelConfig config, ContextParallelism parallelism, int maxWaiting) {
        if (parallelism.model() == null) {
            throw new IllegalArgumentException("a sharded lane needs a sharded model");
        }
        this.parallelism = parallelism;
        this.model = parallelism.model();
        this.maxWaiting = maxWaiting;
        this.hasMamba = config.countBlocks(BlockSpec.Mamba.class) > 0;
        this.thread = Thread.ofPlatform().name("coil-sharded").daemon().unstarted(this);
    }

    void start() {
        thread.start();
    }

    /** Queues a request for the lane; false when its waiting queue is full. */
    boolean enqueue(ActiveRequest request) {
        lock.lock();
        try {
            if (stopping || waiting.size() >= maxWaiting) {
                return false;
            }
            waiting.add(request);
            work.signal();
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Wakes the lane so that it sees a cancellation of a waiting request at once. */
    void wake() {
        lock.lock();
        try {
            work.signal();
        } finally {
            lock.unlock();
        }
    }

    /** 1 while a sequence runs, else 0. */
    int runningRequests() {
        return running == null ? 0 : 1;
    }

    int waitingRequests() {
        lock.lock();
        try {
            return waiting.size();
        } finally {
            lock.unlock();
        }
    }

    /** Stops after the running request's current prefill or decode; waiting requests end CANCELLED. */
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
            ActiveRequest next;
            while ((next = take()) != null) {
                running = next;
                try {
                    serve(next);
                } finally {
                    running = null;
                }
            }
        } catch (Throwable e) {
            LOG.error("the sharded lane failed", e);
        } finally {
            stopping = true;
            for (ActiveRequest left : drain()) {
                left.fail(EngineEvent.Failed.Reason.CANCELLED, "the engine stopped before the request finished");
            }
        }
    }

    /** The next request to run, failing cancelled waiting ones on the way; null once stopping. */
    private ActiveRequest take() throws InterruptedException {
        while (true) {
            List<ActiveRequest> cancelled = new ArrayList<>();
            ActiveRequest next = null;
            lock.lock();
            try {
                waiting.removeIf(request -> request.cancelRequested() && cancelled.add(request));
                if (stopping) {
                    return null;
                }
                if (cancelled.isEmpty()) {
                    next = waiting.poll();
                    if (next == null) {
                        work.await(100, TimeUnit.MILLISECONDS);
                    }
                }
            } finally {
                lock.unlock();
            }
            for (ActiveRequest request : cancelled) {
                request.fail(EngineEvent.Failed.Reason.CANCELLED, "the request was cancelled");
            }
            if (next != null) {
                return next;
            }
        }
    }

    private List<ActiveRequest> drain() {
        lock.lock();
        try {
            List<ActiveRequest> left = new ArrayList<>(waiting);
            waiting.clear();
            return left;
        } finally {
            lock.unlock();
        }
    }

    /**
     * One request from prompt to finish: prompt logprobs (when asked) from the sharded scorer,
     * the sharded prefill, then one decode per token until the request says it is done. A failure
     * ends this request alone.
     */
    private void serve(ActiveRequest active) {
        if (active.cancelRequested()) {
            active.fail(EngineEvent.Failed.Reason.CANCELLED, "the request was cancelled");
            return;
        }
        active.markScheduled();
        active.addPath(model.path());
        int[] prompt = active.request().promptTokens();
        try {
            if (active.wantsPromptLogprobs()) {
                // Every prompt position's distribution: the sharded scorer's pass, apart from the
                // run's prefill, which keeps only the last position's logits. It runs (and frees its
                // sequence) before the run opens: a sharded model runs one sequence at a time.
                active.acceptPromptScores(model.score(prompt, active.request().promptLogprobs(),
                        parallelism.layout()).result());
            }
            if (active.maxTokens() == 0) {
                active.acceptNextLogits(null);
                return;
            }
            generate(active, prompt);
        } catch (RuntimeException | OutOfMemoryError e) {
            LOG.error("request {} failed in the sharded lane ({})", active.id(), model.path(), e);
            active.fail(EngineEvent.Failed.Reason.ERROR, "context-parallel run (" + model.path() + ") failed: "
                    + (e instanceof OutOfMemoryError ? "out of memory" : e.getMessage()));
        }
    }

    /** The sharded prefill, then one decode per token until the request says it is done. */
    private void generate(ActiveRequest active, int[] prompt) {
        try (ShardedRun run = model.newRun(parallelism.layout())) {
            if (hasMamba) {
                active.addPath(ActiveRequest.SSD_SCAN);
            }
            boolean done = active.acceptNextLogits(run.prefill(prompt));
            while (!done) {
                if (active.cancelRequested()) {
                    active.fail(EngineEvent.Failed.Reason.CANCELLED, stopping
                            ? "the engine stopped before the request finished" : "the request was cancelled");
                    return;
                }
                if (hasMamba) {
                    active.addPath(ActiveRequest.SSM_RECURRENCE);
                }
                done = active.acceptNextLogits(run.decode(active.lastToken()));
            }
        }
    }
}
