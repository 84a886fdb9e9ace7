package dev.coil.server.telemetry;

import dev.coil.engine.runner.EngineEvent;
import dev.coil.engine.runner.RequestTimings;
import dev.coil.engine.runner.SamplingParams;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.propagation.TextMapGetter;
import io.opentelemetry.context.propagation.TextMapPropagator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Spans for generation requests, with OpenTelemetry's gen_ai.* attributes: one server span per
 * HTTP request, named "{operation} {model}", and under it a queue, a prefill and a decode span per
 * choice, placed in time from the engine's {@link RequestTimings}. An incoming W3C traceparent
 * header makes the request span a child of the caller's.
 */
public final class Tracing {

    static final AttributeKey<String> OPERATION = AttributeKey.stringKey("gen_ai.operation.name");
    static final AttributeKey<String> PROVIDER = AttributeKey.stringKey("gen_ai.provider.name");
    static final AttributeKey<String> REQUEST_MODEL = AttributeKey.stringKey("gen_ai.request.model");
    static final AttributeKey<Long> MAX_TOKENS = AttributeKey.longKey("gen_ai.request.max_tokens");
    static final AttributeKey<Double> TEMPERATURE = AttributeKey.doubleKey("gen_ai.request.temperature");
    static final AttributeKey<Double> TOP_P = AttributeKey.doubleKey("gen_ai.request.top_p");
    static final AttributeKey<Double> TOP_K = AttributeKey.doubleKey("gen_ai.request.top_k");
    static final AttributeKey<Double> PRESENCE_PENALTY = AttributeKey.doubleKey("gen_ai.request.presence_penalty");
    static final AttributeKey<Double> FREQUENCY_PENALTY = AttributeKey.doubleKey("gen_ai.request.frequency_penalty");
    static final AttributeKey<Long> SEED = AttributeKey.longKey("gen_ai.request.seed");
    static final AttributeKey<List<String>> STOP_SEQUENCES = AttributeKey.stringArrayKey("gen_ai.request.stop_sequences");
    static final AttributeKey<Long> CHOICE_COUNT = AttributeKey.longKey("gen_ai.request.choice.count");
    static final AttributeKey<String> RESPONSE_ID = AttributeKey.stringKey("gen_ai.response.id");
    static final AttributeKey<String> RESPONSE_MODEL = AttributeKey.stringKey("gen_ai.response.model");
    static final AttributeKey<List<String>> FINISH_REASONS = AttributeKey.stringArrayKey("gen_ai.response.finish_reasons");
    static final AttributeKey<Long> INPUT_TOKENS = AttributeKey.longKey("gen_ai.usage.input_tokens");
    static final AttributeKey<Long> OUTPUT_TOKENS = AttributeKey.longKey("gen_ai.usage.output_tokens");
    static final AttributeKey<String> ERROR_TYPE = AttributeKey.stringKey("error.type");
    static final AttributeKey<Long> CHOICE_INDEX = AttributeKey.longKey("coil.choice.index");
    static final AttributeKey<Long> CACHED_TOKENS = AttributeKey.longKey("coil.usage.cached_input_tokens");
    static final AttributeKey<List<String>> PATHS = AttributeKey.stringArrayKey("coil.paths");

    private static final TextMapGetter<Map<String, String>> HEADERS = new TextMapGetter<>() {
        @Override
        public Iterable<String> keys(Map<String, String> carrier) {
            return carrier.keySet();
        }

        @Override
        public String get(Map<String, String> carrier, String key) {
            if (carrier == null) {
                return null;
            }
            for (Map.Entry<String, String> header : carrier.entrySet()) {
                if (header.getKey().equalsIgnoreCase(key)) {
                    return header.getValue();
                }
            }
            return null;
        }
    };

    private final Tracer tracer;
    private final TextMapPropagator propagator;

    Tracing(Tracer tracer, TextMapPropagator propagator) {
        this.tracer = tracer;
        this.propagator = propagator;
    }

    /** Starts the span of one generation request; the headers may carry the caller's trace context. */
    Span startRequest(String operation, String model, SamplingParams sampling, int choices, Map<String, String> headers) {
        Context parent = propagator.extract(Context.root(), headers, HEADERS);
        var builder = tracer.spanBuilder(operation + " " + model)
                .setParent(parent)
                .setSpanKind(SpanKind.SERVER)
                .setAttribute(OPERATION, operation)
                .setAttribute(PROVIDER, "coil")
                .setAttribute(REQUEST_MODEL, model)
                .setAttribute(TEMPERATURE, sampling.temperature())
                .setAttribute(TOP_P, sampling.topP())
                .setAttribute(CHOICE_COUNT, (long) choices);
        if (sampling.maxTokens() != SamplingParams.UNLIMITED_TOKENS) {
            builder.setAttribute(MAX_TOKENS, (long) sampling.maxTokens());
        }
        if (sampling.topK() > 0) {
            builder.setAttribute(TOP_K, (double) sampling.topK());
        }
        if (sampling.presencePenalty() != 0) {
            builder.setAttribute(PRESENCE_PENALTY, sampling.presencePenalty());
        }
        if (sampling.frequencyPenalty() != 0) {
            builder.setAttribute(FREQUENCY_PENALTY, sampling.frequencyPenalty());
        }
        if (sampling.seed() != null) {
            builder.setAttribute(SEED, sampling.seed());
        }
        if (!sampling.stopStrings().isEmpty()) {
            builder.setAttribute(STOP_SEQUENCES, sampling.stopStrings());
        }
        return builder.startSpan();
    }

    /** The queue, prefill and decode spans of one finished choice, under the request's span. */
    void choicePhases(Span request, int choice, EngineEvent.Finished finished, long submittedEpochNanos) {
        RequestTimings timings = finished.timings();
        Context parent = Context.root().with(request);
        long queueEnd = submittedEpochNanos + nanos(timings.queueMillis());
        long prefillEnd = queueEnd + nanos(timings.prefillMillis());
        long decodeEnd = prefillEnd + nanos(timings.decodeMillis());
        phase(parent, "queue", choice, submittedEpochNanos).end(queueEnd, TimeUnit.NANOSECONDS);
        phase(parent, "prefill", choice, queueEnd)
                .setAttribute(INPUT_TOKENS, (long) finished.usage().promptTokens())
                .setAttribute(CACHED_TOKENS, (long) finished.usage().cachedPromptTokens())
                .setAttribute(PATHS, finished.paths())
                .end(prefillEnd, TimeUnit.NANOSECONDS);
        phase(parent, "decode", choice, prefillEnd)
                .setAttribute(OUTPUT_TOKENS, (long) finished.usage().completionTokens())
                .end(decodeEnd, TimeUnit.NANOSECONDS);
    }

    /** Ends the request's span with the response's attributes, or with the error that ended it. */
    void endRequest(Span span, String responseId, String model, List<String> finishReasons, long inputTokens,
            long outputTokens, String errorType, String errorMessage) {
        if (responseId != null) {
            span.setAttribute(RESPONSE_ID, responseId);
        }
        span.setAttribute(RESPONSE_MODEL, model);
        if (!finishReasons.isEmpty()) {
            span.setAttribute(FINISH_REASONS, finishReasons);
        }
        span.setAttribute(INPUT_TOKENS, inputTokens);
        span.setAttribute(OUTPUT_TOKENS, outputTokens);
        if (errorType != null) {
            span.setAttribute(ERROR_TYPE, errorType);
            span.setStatus(StatusCode.ERROR, errorMessage == null ? errorType : errorMessage);
        }
        span.end();
    }

    private Span phase(Context parent, String name, int choice, long startEpochNanos) {
        return tracer.spanBuilder(name)
                .setParent(parent)
                .setSpanKind(SpanKind.INTERNAL)
                .setStartTimestamp(startEpochNanos, TimeUnit.NANOSECONDS)
                .setAttribute(CHOICE_INDEX, (long) choice)
                .startSpan();
    }

    private static long nanos(double millis) {
        return Math.round(millis * 1e6);
    }
}
