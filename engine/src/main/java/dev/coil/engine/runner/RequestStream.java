package dev.coil.engine.runner;

import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The events of one submitted request, produced by the engine's step loop and consumed by one
 * reader (an HTTP handler). Ends with exactly one {@link EngineEvent.Finished} or
 * {@link EngineEvent.Failed}.
 */
public final class RequestStream {

    private final String requestId;
    private final Engine engine;
    private final LinkedBlockingQueue<EngineEvent> events = new LinkedBlockingQueue<>();

    RequestStream(String requestId, Engine engine) {
        this.requestId = requestId;
        this.engine = engine;
    }

    public String requestId() {
        return requestId;
    }

    /** The next event, waiting up to {@code timeoutMillis}; null when none came in time. */
    public EngineEvent next(long timeoutMillis) throws InterruptedException {
        return events.poll(timeoutMillis, TimeUnit.MILLISECONDS);
    }

    /** The next event, waiting as long as it takes. */
    public EngineEvent next() throws InterruptedException {
        return events.take();
    }

    /** Cancels this request (same as {@code engine.cancel(requestId())}); a Failed(CANCELLED) event follows. */
    public void cancel() {
        engine.cancel(requestId);
    }

    void publish(EngineEvent event) {
        events.add(event);
    }
}
