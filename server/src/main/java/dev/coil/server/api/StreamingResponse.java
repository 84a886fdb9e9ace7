package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent;
import dev.coil.server.telemetry.RequestTelemetry;
import io.javalin.http.Context;
import java.io.IOException;
import java.util.List;

/**
 * A streamed answer: a 200 with Server-Sent Events as soon as the request is queued, one chunk
 * per token of each choice, a comment every keep-alive interval without events (long prefills),
 * the usage chunk when asked for, then [DONE]. An engine failure after the 200 is sent as an
 * {@code {"error": ...}} event. When a write fails the client has gone: the caller's ChoiceSet
 * cancels its requests.
 */
final class StreamingResponse {

    /** How long a disconnected stream waits for the engine to confirm its cancellations. */
    private static final long DRAIN_NANOS = 30_000_000_000L;

    private final ResponseShape shape;
    private final ResponseEnvelope envelope;
    private final ChoiceSet set;
    private final List<ChoiceState> choices;
    private final RequestTelemetry trace;
    private final GenerationSettings settings;
    private final long keepAliveMillis;

    StreamingResponse(ResponseShape shape, ResponseEnvelope envelope, ChoiceSet set, List<ChoiceState> choices,
            RequestTelemetry trace, GenerationSettings settings, long keepAliveMillis) {
        this.shape = shape;
        this.envelope = envelope;
        this.set = set;
        this.choices = choices;
        this.trace = trace;
        this.settings = settings;
        this.keepAliveMillis = keepAliveMillis;
    }

    void run(Context ctx) throws InterruptedException {
        try {
            SseWriter sse = new SseWriter(ctx);
            sse.open();
            for (ChoiceState choice : choices) {
                send(sse, shape.opening(choice));
            }
            while (!set.allEnded()) {
                ChoiceSet.Event event = set.next(keepAliveMillis);
                if (event == null) {
                    sse.comment("keep-alive");
                    continue;
                }
                ChoiceState choice = choices.get(event.choice());
                String text = GenerationRunner.record(set, choice, event, trace, settings);
                switch (event.event()) {
                    case EngineEvent.PromptLogprobs ignored -> send(sse, shape.prompt(choice));
                    case EngineEvent.Token token -> send(sse, shape.delta(choice, text, token.logprobs()));
                    case EngineEvent.Finished ignored -> {
                        ObjectNode chunk = envelope.chunk(shape.last(choice, text));
                        if (set.allEnded() && !settings.includeUsage()) {
                            envelope.addExtras(chunk);
                        }
                        sse.data(chunk);
                    }
                    case EngineEvent.Failed failed -> {
                        set.cancelAll();
                        ApiException error = GenerationRunner.failure(failed, shape.promptParam());
                        sse.data(ErrorResponses.body(error));
                        sse.done();
                        trace.end(envelope.id(), error.type(), error.getMessage());
                        return;
                    }
                }
            }
            if (settings.includeUsage()) {
                ObjectNode usage = envelope.usageChunk();
                envelope.addExtras(usage);
                sse.data(usage);
            }
            sse.done();
            trace.end(envelope.id());
        } catch (IOException clientGone) {
            set.cancelAll();
            drainCancelled();
            trace.end(envelope.id(), "client_disconnected", clientGone.getMessage());
        }
    }

    /**
     * Reads the cancelled choices' last events, so that metrics count them; the engine ends a
     * cancelled request within one step.
     */
    private void drainCancelled() throws InterruptedException {
        long deadline = System.nanoTime() + DRAIN_NANOS;
        while (!set.allEnded() && System.nanoTime() < deadline) {
            ChoiceSet.Event event = set.next(100);
            if (event != null) {
                GenerationRunner.record(set, choices.get(event.choice()), event, trace, settings);
            }
        }
    }

    private void send(SseWriter sse, ObjectNode choice) throws IOException {
        if (choice != null) {
            sse.data(envelope.chunk(choice));
        }
    }
}
