package dev.coil.server.api;

import dev.coil.engine.runner.EngineEvent;
import dev.coil.server.telemetry.RequestTelemetry;
import io.javalin.http.Context;
import java.io.EOFException;
import java.io.IOException;
import java.util.List;

/**
 * A streamed answer: a 200 with Server-Sent Events as soon as the request is queued, the events its
 * {@link AnswerFormat} writes for each choice's tokens (one chunk a token in the completions and chat
 * APIs), a comment every keep-alive interval without writes (long prefills), and the format's end (the
 * usage chunk when asked for, then [DONE]). An engine failure after the 200 is sent as the format's
 * error event. When a write fails, or the connection is found closed while the request waits or
 * prefills, the client has gone: its requests are cancelled.
 */
final class StreamingResponse {

    private final AnswerFormat format;
    private final ChoiceSet set;
    private final List<ChoiceState> choices;
    private final RequestTelemetry trace;
    private final GenerationSettings settings;
    private final long keepAliveMillis;
    private final ClientConnection connection;

    StreamingResponse(AnswerFormat format, ChoiceSet set, List<ChoiceState> choices, RequestTelemetry trace,
            GenerationSettings settings, long keepAliveMillis, ClientConnection connection) {
        this.format = format;
        this.set = set;
        this.choices = choices;
        this.trace = trace;
        this.settings = settings;
        this.keepAliveMillis = keepAliveMillis;
        this.connection = connection;
    }

    /**
     * What {@code format} writes for an event of {@code choice} that is not a failure ({@code text}: what
     * the event added to the choice's text; {@code allEnded}: whether every choice has ended with it).
     */
    static void write(AnswerFormat format, SseWriter sse, ChoiceState choice, EngineEvent event, String text,
            boolean allEnded) throws IOException {
        switch (event) {
            case EngineEvent.PromptLogprobs ignored -> format.prompt(sse, choice);
            case EngineEvent.Token token -> format.token(sse, choice, text, token.logprobs());
            case EngineEvent.Finished ignored -> format.finished(sse, choice, text, allEnded);
            case EngineEvent.Failed failed -> throw new IllegalArgumentException("a failure is not written as a token");
        }
    }

    void run(Context ctx) throws InterruptedException {
        try {
            SseWriter sse = new SseWriter(ctx);
            sse.open();
            format.open(sse);
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
                if (event.event() instanceof EngineEvent.Failed failed) {
                    set.cancelAll();
                    ApiException error = GenerationRunner.failure(failed, format.promptParam());
                    format.failed(sse, error);
                    trace.end(format.id(), error.type(), error.getMessage());
                    return;
                }
                write(format, sse, choice, event.event(), text, set.allEnded());
            }
            format.close(sse);
            trace.end(format.id());
        } catch (IOException clientGone) {
            GenerationRunner.cancelForGoneClient(set, choices, trace, settings);
            trace.end(format.id(), "client_disconnected", clientGone.getMessage());
        }
    }
}
