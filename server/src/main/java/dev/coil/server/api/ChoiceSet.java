package dev.coil.server.api;

import dev.coil.engine.runner.Engine;
import dev.coil.engine.runner.EngineEvent;
import dev.coil.engine.runner.EngineRequest;
import dev.coil.engine.runner.RequestStream;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The engine requests behind one HTTP request (one per choice of each prompt), their events merged
 * into one queue in arrival order. Closing it cancels whatever has not finished: a client that goes
 * away takes only its own requests with it.
 */
final class ChoiceSet implements AutoCloseable {

    /**
     * One engine event of choice {@code choice}, stamped when it was taken off the engine's stream.
     */
    record Event(int choice, EngineEvent event, long nanos) {
        boolean isTerminal() {
            return event instanceof EngineEvent.Finished || event instanceof EngineEvent.Failed;
        }
    }

    private final Engine engine;
    private final List<RequestStream> streams;
    private final long[] submittedNanos;
    private final long[] submittedEpochNanos;
    private final boolean[] ended;
    private final List<Thread> forwarders = new ArrayList<>();
    private final LinkedBlockingQueue<Event> merged = new LinkedBlockingQueue<>();
    private int open;

    private ChoiceSet(Engine engine, List<RequestStream> streams, long[] submittedNanos, long[] submittedEpochNanos) {
        this.engine = engine;
        this.streams = streams;
        this.submittedNanos = submittedNanos;
        this.submittedEpochNanos = submittedEpochNanos;
        this.ended = new boolean[streams.size()];
        this.open = streams.size();
        for (int i = 0; i < streams.size(); i++) {
            int choice = i;
            RequestStream stream = streams.get(i);
            forwarders.add(Thread.ofVirtual().name("coil-choice-" + stream.requestId()).start(() -> forward(choice, stream)));
        }
    }

    /**
     * Submits every request, in order. When one is refused the ones already queued are cancelled and
     * the refusal is rethrown, so a request is served whole or not at all.
     */
    static ChoiceSet submit(Engine engine, List<EngineRequest> requests) {
        List<RequestStream> streams = new ArrayList<>(requests.size());
        long[] submitted = new long[requests.size()];
        long[] submittedEpoch = new long[requests.size()];
        try {
            for (int i = 0; i < requests.size(); i++) {
                submittedEpoch[i] = epochNanos();
                submitted[i] = System.nanoTime();
                streams.add(engine.submit(requests.get(i)));
            }
        } catch (RuntimeException e) {
            streams.forEach(RequestStream::cancel);
            throw e;
        }
        return new ChoiceSet(engine, streams, submitted, submittedEpoch);
    }

    int size() {
        return streams.size();
    }

    String requestId(int choice) {
        return streams.get(choice).requestId();
    }

    /** System.nanoTime() when choice {@code choice} was submitted. */
    long submittedNanos(int choice) {
        return submittedNanos[choice];
    }

    /** Wall-clock time of the submit, in nanoseconds since the epoch (for span timestamps). */
    long submittedEpochNanos(int choice) {
        return submittedEpochNanos[choice];
    }

    /** Whether every choice has delivered its Finished or Failed event. */
    boolean allEnded() {
        return open == 0;
    }

    /** The next event of any choice, or null when none came within the timeout. Single reader. */
    Event next(long timeoutMillis) throws InterruptedException {
        Event event = merged.poll(timeoutMillis, TimeUnit.MILLISECONDS);
        if (event != null && event.isTerminal() && !ended[event.choice()]) {
            ended[event.choice()] = true;
            open--;
        }
        return event;
    }

    /** Cancels every choice that has not ended. */
    void cancelAll() {
        for (int i = 0; i < streams.size(); i++) {
            if (!ended[i]) {
                engine.cancel(streams.get(i).requestId());
            }
        }
    }

    @Override
    public void close() {
        cancelAll();
        forwarders.forEach(Thread::interrupt);
    }

    private void forward(int choice, RequestStream stream) {
        try {
            while (true) {
                EngineEvent event = stream.next();
                Event stamped = new Event(choice, event, System.nanoTime());
                merged.add(stamped);
                if (stamped.isTerminal()) {
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static long epochNanos() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000_000L + now.getNano();
    }
}
