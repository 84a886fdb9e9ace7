package dev.coil.server.telemetry;

import dev.coil.engine.runner.EngineEvent;
import io.opentelemetry.api.trace.Span;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Metrics and the trace of one generation request (all its choices), fed by the thread that
 * answers it as the engine's events arrive.
 */
public final class RequestTelemetry {

    private final Metrics metrics;
    private final Tracing tracing;
    private final Span span;
    private final String model;
    private final long[] lastTokenNanos;
    private final List<String> finishReasons = new ArrayList<>();
    private long inputTokens;
    private long outputTokens;
    private boolean ended;

    RequestTelemetry(Metrics metrics, Tracing tracing, Span span, String model, int choices) {
        this.metrics = metrics;
        this.tracing = tracing;
        this.span = span;
        this.model = model;
        this.lastTokenNanos = new long[choices];
        Arrays.fill(lastTokenNanos, -1);
    }

    /** A token of choice {@code choice} arrived at {@code nanos} (System.nanoTime()). */
    public void token(int choice, long nanos) {
        if (lastTokenNanos[choice] >= 0) {
            metrics.interTokenGap(nanos - lastTokenNanos[choice]);
        }
        lastTokenNanos[choice] = nanos;
    }

    /**
     * A choice finished.
     *
     * @param countPrompt whether its prompt tokens count toward the request's input (once per prompt)
     */
    public void finished(int choice, EngineEvent.Finished finished, long submittedEpochNanos, boolean countPrompt) {
        metrics.finished(finished);
        tracing.choicePhases(span, choice, finished, submittedEpochNanos);
        finishReasons.add(finished.reason().apiName());
        if (countPrompt) {
            inputTokens += finished.usage().promptTokens();
        }
        outputTokens += finished.usage().completionTokens();
    }

    /** A choice ended without finishing (cancelled, rejected, failed). */
    public void failed(EngineEvent.Failed failed) {
        metrics.failed(failed);
    }

    /** The request was answered; {@code responseId} may be null when it never got that far. */
    public void end(String responseId) {
        end(responseId, null, null);
    }

    /** The request ended in an error of {@code errorType} (an OpenAI error type or "client_disconnected"). */
    public void end(String responseId, String errorType, String message) {
        if (ended) {
            return;
        }
        ended = true;
        tracing.endRequest(span, responseId, model, finishReasons, inputTokens, outputTokens, errorType, message);
    }
}
