package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent;
import dev.coil.server.telemetry.RequestTelemetry;
import io.javalin.http.Context;
import java.io.EOFException;
import java.io.IOException;
import java.util.List;

/**
 * A streamed answer: a 200 with Server-Sent Events as soon as the request is queued, one chunk
 * per token of each choice, a comment every keep-alive interval without writes (long prefills),
 * the usage chunk when asked for, then [DONE]. An engine failure after the 200 is sent as an
 * {@code {"error": ...}} event. When a write fails, or the connection is found closed while the
 * request waits or prefills, the client has gone: its requests are cancelled.
 */
final class StreamingResponse {

    private final ResponseShape shape;
    private final ResponseEnvelope envelope;
    private final ChoiceSet set;
    private final List<ChoiceState> choices;
    private final RequestTelemetry trace;
    private final GenerationSettings settings;
    private final long keepAliveMillis;
    private final ClientConnection connection;

    StreamingResponse(ResponseShape shape, ResponseEnvelope envelope, ChoiceSet set, List<ChoiceState> choices,
            RequestTelemetry trace, GenerationSettings settings, long keepAliveMillis, ClientConnection connection) {
        this.shape = shape;
        this.envelope = envelope;
        this.set = set;
        this.choices = choices;
        this.trace = trace;
        this.settings = settings;
        this.keepAliveMillis = keepAliveMillis;
        this.connection = connection;
    }

    void run(Context ctx) throws InterruptedException {
        try {
            SseWriter sse = new SseWriter(ctx);
            sse.open();
            for (ChoiceState choice : choices) {
                send(sse, shape.opening(choice), choice);
            }
            while (!set.allEnded()) {
                if (connection.isClosed()) {
                    // Gone while nothing was written to fail: ends here as a failed write does.
                    throw new EOFException("the client closed the connection");
                }
                ChoiceSet.Event event = set.next(Math.min(keepAliveMillis, ClientConnection.PROBE_MILLIS));
                if (event == null) {
                    if (sse.quietMillis() >= keepAliveMillis) {
                        sse.comment("keep-alive");
                    }
                    continue;
                }
                ChoiceState choice = choices.get(event.choice());
                String text = GenerationRunner.record(set, choice, event, trace, settings);
                switch (event.event()) {
                    case EngineEvent.PromptLogprobs ignored -> send(sse, shape.prompt(choice), choice);
                    case EngineEvent.Token token -> send(sse, shape.delta(choice, text, token.logprobs()), choice);
                    case EngineEvent.Finished ignored -> {
                        ObjectNode chunk = envelope.chunk(shape.last(choice, text), choice);
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
            GenerationRunner.cancelForGoneClient(set, choices, trace, settings);
            trace.end(envelope.id(), "client_disconnected", clientGone.getMessage());
        }
    }

    private void send(SseWriter sse, ObjectNode choiceNode, ChoiceState choice) throws IOException {
        if (choiceNode != null) {
            sse.data(envelope.chunk(choiceNode, choice));
        }
    }
}
