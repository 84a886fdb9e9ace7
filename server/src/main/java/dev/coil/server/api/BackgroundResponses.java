package dev.coil.server.api;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The Responses API's background responses still running, by id: what POST /v1/responses/{id}/cancel
 * cancels. A response leaves once its last state (completed, incomplete, cancelled or failed) is
 * stored.
 */
public final class BackgroundResponses {

    /** One running response: its engine requests, and whether it was cancelled. */
    static final class Running {
        private final ChoiceSet choices;
        private final CountDownLatch stored = new CountDownLatch(1);
        private volatile boolean cancelled;

        Running(ChoiceSet choices) {
            this.choices = choices;
        }

        boolean cancelled() {
            return cancelled;
        }
    }

    private final Map<String, Running> running = new ConcurrentHashMap<>();

    /** Registers response {@code id}, running {@code choices}. */
    Running start(String id, ChoiceSet choices) {
        Running entry = new Running(choices);
        running.put(id, entry);
        return entry;
    }

    /** Response {@code id}'s last state is stored: it runs no more. */
    void ended(String id) {
        Running entry = running.remove(id);
        if (entry != null) {
            entry.stored.countDown();
        }
    }

    /**
     * Cancels response {@code id} and waits (a few seconds at most) for its cancelled state to be
     * stored; false when it is not running.
     */
    boolean cancel(String id) throws InterruptedException {
        Running entry = running.get(id);
        if (entry == null) {
            return false;
        }
        entry.cancelled = true;
        entry.choices.cancelAll();
        entry.stored.await(10, TimeUnit.SECONDS);
        return true;
    }
}
