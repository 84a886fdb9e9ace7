package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServerState;
import io.javalin.http.Context;
import io.javalin.http.Handler;

/**
 * POST /invocations, the route Amazon SageMaker sends inference requests to (beside GET /ping), as vLLM
 * serves it: the body says which API it is, {@code messages} a chat completion, {@code prompt} a
 * completion, {@code input} a Responses request; the answer, streamed or whole, and its errors are
 * that route's. A body that is none of the three is a 400.
 */
public final class InvocationsHandler implements Handler {

    private final ServerState state;
    private final long maxBodyBytes;
    private final BodyHandler chat;
    private final BodyHandler completions;
    private final BodyHandler responses;

    public InvocationsHandler(ServerState state, long maxBodyBytes, ChatHandler chat, CompletionsHandler completions,
            ResponsesHandler responses) {
        this.state = state;
        this.maxBodyBytes = maxBodyBytes;
        this.chat = chat;
        this.completions = completions;
        this.responses = responses;
    }

    @Override
    public void handle(Context ctx) throws Exception {
        state.ready();
        ObjectNode body = JsonBody.read(ctx, maxBodyBytes);
        BodyHandler route = body.has("messages") ? chat : body.has("prompt") ? completions
                : body.has("input") ? responses : null;
        if (route == null) {
            throw ApiException.badRequest("POST /invocations takes a chat completion request (messages), a "
                    + "completion request (prompt) or a Responses request (input); the body has none of them");
        }
        route.answer(ctx, body);
    }
}
