package dev.coil.engine.runner;

import dev.coil.engine.model.HybridModel;
import dev.coil.engine.model.Phase;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.ops.Ops;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The engine's step thread: admits waiting requests, runs one step of every running one, repeats. */
final class StepLoop implements Runnable {

    private static final Logger LOG = LoggerFactory.getLogger(StepLoop.class);

    private final LoadedModel loaded;
    private final Ops ops;
    private final EngineOptions options;
    private final Consumer<String> onDone;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition work = lock.newCondition();
    private final ArrayDeque<ActiveRequest> waiting = new ArrayDeque<>();
    private final List<ActiveRequest> running = new ArrayList<>();
    private final Map<ActiveRequest, SequenceState> states = new HashMap<>();
    private final Thread thread;
    private volatile boolean stopping;
    private volatile EngineStats stats = new EngineStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    StepLoop(LoadedModel loaded, Ops ops, EngineOptions options, Consumer<String> onDone) {
        this.loaded = loaded;
        this.ops = ops;
        this.options = options;
        this.onDone = onDone;
        this.thread = Thread.ofPlatform().name("coil-engine").daemon().unstarted(this);
    }

    void start() {
        thread.start();
    }

    boolean enqueue(ActiveRequest request) {
        lock.lock();
        try {
            if (waiting.size() >= options.maxWaiting()) {
                return false;
            }
            waiting.add(request);
            work.signal();
            return true;
        } finally {
            lock.unlock();
        }
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
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void run() {
        while (!stopping) {
            lock.lock();
            try {
                while (waiting.isEmpty() && running.isEmpty() && !stopping) {
                    work.awaitUninterruptibly();
                }
                while (!waiting.isEmpty() && running.size() < options.maxSequences()) {
                    ActiveRequest next = waiting.poll();
                    running.add(next);
                    states.put(next, loaded.model().newSequence());
                }
                stats = new EngineStats(running.size(), waiting.size(), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            } finally {
                lock.unlock();
            }
            step();
        }
        lock.lock();
        try {
            waiting.forEach(r -> finish(r, "the engine stopped"));
            running.forEach(r -> finish(r, "the engine stopped"));
        } finally {
            lock.unlock();
        }
    }

    private void step() {
        HybridModel model = loaded.model();
        int vocab = model.config().vocabSize();
        for (Iterator<ActiveRequest> it = running.iterator(); it.hasNext();) {
            ActiveRequest request = it.next();
            try {
                if (request.cancelRequested()) {
                    request.fail(EngineEvent.Failed.Reason.CANCELLED, "the request was cancelled");
                } else {
                    request.markScheduled();
                    SequenceState state = states.get(request);
                    int seen = state.length();
                    int known = request.promptLength() + request.generatedCount();
                    int count = Math.min(known - seen, options.maxBatchedTokens());
                    int[] tokens = new int[count];
                    for (int i = 0; i < count; i++) {
                        tokens[i] = request.tokenAt(seen + i);
                    }
                    boolean prompt = seen < request.promptLength();
                    boolean all = request.wantsPromptLogprobs() && prompt;
                    float[] logits = model.forward(ops, state, tokens, prompt ? Phase.PREFILL : Phase.DECODE, all);
                    if (all) {
                        request.acceptPromptLogits(seen, logits, count, vocab);
                        logits = Arrays.copyOfRange(logits, (count - 1) * vocab, count * vocab);
                    }
                    if (state.length() == known) {
                        request.acceptNextLogits(logits);
                    }
                }
            } catch (RuntimeException e) {
                LOG.error("request {} failed", request.id(), e);
                request.fail(EngineEvent.Failed.Reason.ERROR, "internal error: " + e.getMessage());
            }
            if (request.isDone()) {
                it.remove();
                states.remove(request);
                onDone.accept(request.id());
            }
        }
    }

    private void finish(ActiveRequest request, String message) {
        request.fail(EngineEvent.Failed.Reason.CANCELLED, message);
        onDone.accept(request.id());
    }
}
