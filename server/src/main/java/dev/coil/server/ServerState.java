package dev.coil.server;

import dev.coil.server.api.ApiException;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Where the server is in its life: loading the model, serving it, or draining on shutdown; and how
 * many generation requests are in flight. Handlers ask it for the model on every request.
 */
public final class ServerState {

    private volatile ServedModel model;
    private volatile boolean draining;
    private final AtomicInteger inFlight = new AtomicInteger();

    /** The model, when requests may be served; a 503 while loading or shutting down. */
    public ServedModel ready() {
        if (draining) {
            throw ApiException.unavailable("shutting_down", "the server is shutting down and accepts no new requests");
        }
        ServedModel current = model;
        if (current == null) {
            throw ApiException.unavailable("model_loading", "the model is still loading; retry when /health answers 200");
        }
        return current;
    }

    public boolean isReady() {
        return model != null && !draining;
    }

    public Optional<ServedModel> model() {
        return Optional.ofNullable(model);
    }

    void serve(ServedModel loaded) {
        model = loaded;
    }

    void drain() {
        draining = true;
    }

    /** Marks a generation request in flight until the returned handle is closed. */
    public InFlight enter() {
        inFlight.incrementAndGet();
        return inFlight::decrementAndGet;
    }

    public int inFlight() {
        return inFlight.get();
    }

    /** A request's hold on the server; closing it twice is not allowed. */
    public interface InFlight extends AutoCloseable {
        @Override
        void close();
    }
}
