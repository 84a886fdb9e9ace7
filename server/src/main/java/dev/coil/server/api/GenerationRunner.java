package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent;
import dev.coil.engine.runner.EngineRequest;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import dev.coil.server.telemetry.RequestTelemetry;
import dev.coil.server.telemetry.Telemetry;
import io.javalin.http.Context;
import java.io.IOException;
import java.util.List;

/**
 * Runs the engine requests of one completions or chat request and answers it, whole or streamed.
 * Refusals at submit (a bad parameter, a full queue) are errors with their own status; once
 * streaming has started, errors travel inside the stream. A client that closes its connection
 * before its answer is complete cancels the request's engine requests, whole or streamed, and is
 * answered nothing more.
 */
public final class GenerationRunner {

    /** How long a request whose client has gone waits for the engine to confirm its cancellations. */
    private static final long DRAIN_NANOS = 30_000_000_000L;

    private final ServerState state;
    private final Telemetry telemetry;
    private final long keepAliveMillis;

    public GenerationRunner(ServerState state, Telemetry telemetry, long keepAliveMillis) {
        this.state = state;
        this.telemetry = telemetry;
        this.keepAliveMillis = keepAliveMillis;
    }

    /**
     * @param choices  one state per engine request, in response order
     * @param requests the engine request of each choice
     */
    void run(Context ctx, ServedModel model, ResponseShape shape, GenerationSettings settings,
            List<ChoiceState> choices, List<EngineRequest> requests) throws IOException, InterruptedException {
        ResponseEnvelope envelope = new ResponseEnvelope(shape, model.name(), choices, settings.includeUsage(),
                settings.continuousUsage());
        run(ctx, model, new ChoiceChunks(shape, envelope, choices, settings.includeUsage(), settings.returnTokenIds()),
                settings, choices, requests);
    }

    /** As above, the answer written as {@code format} writes it. */
    void run(Context ctx, ServedModel model, AnswerFormat format, GenerationSettings settings,
            List<ChoiceState> choices, List<EngineRequest> requests) throws IOException, InterruptedException {
        try (ServerState.InFlight ignored = state.enter()) {
            RequestTelemetry trace = telemetry.startRequest(format.operation(), model.name(), settings.sampling(),
                    requests.size(), ctx.headerMap());
            ChoiceSet set = submit(model, requests, format.promptParam(), trace);
            ClientConnection connection = ClientConnection.of(ctx);
            try (set) {
                if (settings.stream()) {
                    new StreamingResponse(format, set, choices, trace, settings, keepAliveMillis, connection).run(ctx);
                } else if (collect(set, choices, trace, settings, format.promptParam(), connection)) {
                    trace.end(format.id());
                    Json.respond(ctx, 200, format.whole());
                } else {
                    trace.end(format.id(), "client_disconnected", "the client closed the connection");
                }
            } catch (ApiException e) {
                trace.end(format.id(), e.type(), e.getMessage());
                throw e;
            } catch (InterruptedException | RuntimeException e) {
                trace.end(format.id(), "server_error", e.getMessage());
                throw e;
            }
        }
    }

    /**
     * Runs one Responses request in the background (OpenAI's {@code background: true}): submitted now,
     * a refusal thrown as from {@link #run}; then, on a virtual thread that holds the server's
     * in-flight count until it ends, the answer's states are stored as they come (in progress at the
     * first event; completed or incomplete, cancelled, or failed at the end) and the response leaves
     * {@code running}. Without {@code stream}, answers the queued response, stored; with it, the
     * answer's events, kept in a {@link BackgroundStream} for later readers too, sent to this client as
     * they come (its going away ends only its reading).
     */
    void runInBackground(Context ctx, ServedModel model, ResponsesAnswer answer, GenerationSettings settings,
            List<ChoiceState> choices, List<EngineRequest> requests, BackgroundResponses running)
            throws InterruptedException {
        ServerState.InFlight inFlight = state.enter();
        RequestTelemetry trace = telemetry.startRequest(answer.operation(), model.name(), settings.sampling(),
                requests.size(), ctx.headerMap());
        ChoiceSet set;
        try {
            set = submit(model, requests, answer.promptParam(), trace);
        } catch (ApiException refused) {
            inFlight.close();
            throw refused;
        }
        BackgroundStream stream = settings.stream() ? new BackgroundStream() : null;
        SseWriter events = stream == null ? null : stream.writer();
        BackgroundResponses.Running entry = running.start(answer.id(), set, stream);
        ObjectNode queued = answer.store("queued", null);
        Thread.ofVirtual().name("coil-background-" + answer.id()).start(() -> {
            try (inFlight; set) {
                if (events != null) {
                    answer.open(events);
                }
                boolean started = false;
                ApiException failure = null;
                while (!set.allEnded()) {
                    ChoiceSet.Event event = set.next(ClientConnection.PROBE_MILLIS);
                    if (event == null) {
                        continue;
                    }
                    ChoiceState choice = choices.get(event.choice());
                    String text = record(set, choice, event, trace, settings);
                    if (!started) {
                        started = true;
                        answer.store("in_progress", null);
                    }
                    if (event.event() instanceof EngineEvent.Failed failed) {
                        if (failure == null && !entry.cancelled()) {
                            set.cancelAll();
                            failure = failure(failed, answer.promptParam());
                        }
                    } else if (events != null && failure == null && !entry.cancelled()) {
                        StreamingResponse.write(answer, events, choice, event.event(), text, set.allEnded());
                    }
                }
                boolean allFinished = choices.stream().allMatch(choice -> choice.finished() != null);
                if (entry.cancelled() && !allFinished) {
                    answer.store("cancelled", null);
                    trace.end(answer.id(), "cancelled", "the response was cancelled");
                } else if (failure != null) {
                    answer.store("failed", failure);
                    if (events != null) {
                        answer.failed(events, failure);
                    }
                    trace.end(answer.id(), failure.type(), failure.getMessage());
                } else {
                    if (events != null) {
                        answer.close(events);
                    } else {
                        answer.whole();
                    }
                    trace.end(answer.id());
                }
            } catch (IOException | InterruptedException | RuntimeException e) {
                answer.store("failed", ApiException.internal(String.valueOf(e.getMessage())));
                trace.end(answer.id(), "server_error", e.getMessage());
            } finally {
                if (stream != null) {
                    stream.end();
                }
                running.ended(answer.id());
            }
        });
        if (stream == null) {
            Json.respond(ctx, 200, queued);
            return;
        }
        try {
            SseWriter client = new SseWriter(ctx);
            client.open();
            stream.replay(client, -1, keepAliveMillis);
        } catch (IOException clientGone) {
            // the response runs on; GET /v1/responses/{id}?stream=true reads it again
        }
    }

    /** Submits the engine requests; a refusal (a bad parameter, a full queue) is its error, told to the trace. */
    private static ChoiceSet submit(ServedModel model, List<EngineRequest> requests, String promptParam,
            RequestTelemetry trace) {
        try {
            return ChoiceSet.submit(model.engine(), requests);
        } catch (RuntimeException e) {
            ApiException error = ErrorResponses.fromEngine(e, promptParam);
            trace.end(null, error.type(), error.getMessage());
            throw error;
        }
    }

    /**
     * Waits for every choice to end; the first choice that fails fails the whole request. Returns
     * false, having cancelled every choice, when the client closed the connection meanwhile.
     */
    private static boolean collect(ChoiceSet set, List<ChoiceState> choices, RequestTelemetry trace,
            GenerationSettings settings, String promptParam, ClientConnection connection) throws InterruptedException {
        while (!set.allEnded()) {
            if (connection.isClosed()) {
                cancelForGoneClient(set, choices, trace, settings);
                return false;
            }
            ChoiceSet.Event event = set.next(ClientConnection.PROBE_MILLIS);
            if (event == null) {
                continue;
            }
            record(set, choices.get(event.choice()), event, trace, settings);
            if (event.event() instanceof EngineEvent.Failed failed) {
                set.cancelAll();
                throw failure(failed, promptParam);
            }
        }
        return true;
    }

    /**
     * Cancels every choice that has not ended and reads their last events, so that metrics count
     * them; the engine ends a cancelled request at its next step.
     */
    static void cancelForGoneClient(ChoiceSet set, List<ChoiceState> choices, RequestTelemetry trace,
            GenerationSettings settings) throws InterruptedException {
        set.cancelAll();
        long deadline = System.nanoTime() + DRAIN_NANOS;
        while (!set.allEnded() && System.nanoTime() < deadline) {
            ChoiceSet.Event event = set.next(100);
            if (event != null) {
                record(set, choices.get(event.choice()), event, trace, settings);
            }
        }
    }

    /** Adds an event to its choice and to the request's telemetry; returns the text it adds. */
    static String record(ChoiceSet set, ChoiceState choice, ChoiceSet.Event event, RequestTelemetry trace,
            GenerationSettings settings) {
        String text = choice.accept(event.event());
        switch (event.event()) {
            case EngineEvent.Token ignored -> trace.token(event.choice(), event.nanos());
            case EngineEvent.Finished finished -> trace.finished(event.choice(), finished,
                    set.submittedEpochNanos(event.choice()), event.choice() % settings.choices() == 0);
            case EngineEvent.Failed failed -> trace.failed(failed);
            case EngineEvent.PromptLogprobs ignored -> { }
        }
        return text;
    }

    /** The error a choice's failure means for the client. */
    static ApiException failure(EngineEvent.Failed failed, String promptParam) {
        return switch (failed.reason()) {
            case CANCELLED -> ApiException.unavailable("shutting_down", failed.message());
            case REJECTED -> new ApiException(400, "invalid_request_error", promptParam, "request_rejected",
                    failed.message());
            case NO_TOKEN_LEFT -> new ApiException(400, "invalid_request_error",
                    ErrorResponses.parameterOf(failed.message(), promptParam), "no_token_left", failed.message());
            case ERROR -> ApiException.internal(failed.message());
        };
    }
}
