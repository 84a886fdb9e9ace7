package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Several requests' grammar walks at once: the calling thread (the engine's step thread) and up to
 * seven helpers take the walks from one counter, so that short walks are mostly done before a helper
 * wakes and long ones are shared. Each walk is a request's own (its state, its constraint) over what
 * requests share safely (TokenMasks' kept sets and transitions, the automata's moves); what it finds is
 * kept there, where the step thread then reads it.
 */
final class GrammarWalks implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(GrammarWalks.class);

    /** {@code -Dcoil.grammar.parallelWalks=false} leaves every walk to the step thread, for comparisons. */
    static final String PARALLEL_PROPERTY = "coil.grammar.parallelWalks";
    private static final boolean PARALLEL = !"false".equalsIgnoreCase(System.getProperty(PARALLEL_PROPERTY, "true"));
    /** Threads that walk beside the calling one. */
    private static final int HELPERS = Math.clamp(Runtime.getRuntime().availableProcessors() - 1, 1, 7);

    /** Made when first needed. */
    private ExecutorService helpers;

    /**
     * Walks, for each of {@code requests}, its grammar's allowed tokens where its token in {@code tokens}
     * (same order) leads, or with -1 at its present state; returns once all are walked. Nothing where
     * fewer than two are given (the step thread walks one as it goes) or the walks are off.
     *
     * @throws InterruptedException when the calling thread is interrupted while helpers walk
     */
    void walk(List<ActiveRequest> requests, int[] tokens) throws InterruptedException {
        if (!PARALLEL || requests.size() < 2) {
            return;
        }
        if (helpers == null) {
            helpers = Executors.newFixedThreadPool(HELPERS, Thread.ofPlatform().name("coil-grammar-", 0).daemon()
                    .factory());
        }
        AtomicInteger next = new AtomicInteger();
        Runnable walkOn = () -> {
            for (int k = next.getAndIncrement(); k < requests.size(); k = next.getAndIncrement()) {
                requests.get(k).walkGrammar(tokens[k]);
            }
        };
        List<Future<?>> walking = new ArrayList<>();
        for (int h = 0; h < Math.min(HELPERS, requests.size() - 1); h++) {
            walking.add(helpers.submit(walkOn));
        }
        try {
            walkOn.run();
        } catch (RuntimeException e) {
            LOG.warn("a grammar walk failed; the step thread walks it again", e);
        }
        for (Future<?> helper : walking) {
            try {
                helper.get();
            } catch (ExecutionException e) {
                LOG.warn("a grammar walk failed; the step thread walks it again", e.getCause());
            }
        }
    }

    @Override
    public void close() {
        if (helpers != null) {
            helpers.shutdownNow();
        }
    }
}
