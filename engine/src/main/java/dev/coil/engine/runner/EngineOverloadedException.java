package dev.coil.engine.runner;

/** submit() refused a request because the waiting queue is full; the HTTP server answers 429. */
public final class EngineOverloadedException extends RuntimeException {
    public EngineOverloadedException(String message) {
        super(message);
    }
}
