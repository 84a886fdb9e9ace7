package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import java.util.ArrayList;
import java.util.List;

/**
 * The Responses API's routes over stored responses ({@link ResponseStore}): GET /v1/responses/{id}
 * (the response as it was answered; with stream=true, a streamed background response's events, after
 * starting_after), DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items (its input items,
 * a list page: {@link ItemPage}), and POST /v1/responses/{id}/cancel, which cancels a background
 * response still running (a 400 for one that was not background). An id not stored is a 404.
 */
public final class StoredResponsesHandler {

    private final ResponseStore store;
    private final BackgroundResponses running;
    private final long keepAliveMillis;

    /** {@code keepAliveMillis}: how long a streamed read waits for an event before a keep-alive comment. */
    public StoredResponsesHandler(ResponseStore store, BackgroundResponses running, long keepAliveMillis) {
        this.store = store;
        this.running = running;
        this.keepAliveMillis = keepAliveMillis;
    }

    /**
     * The response as stored; with {@code stream=true}, the events of a background response made with
     * {@code stream}, after event {@code starting_after} (all without it), as they come while it runs.
     */
    public void retrieve(Context ctx) throws InterruptedException {
        if (Boolean.parseBoolean(ctx.queryParam("stream"))) {
            String id = ctx.pathParam("id");
            BackgroundStream stream = running.stream(id);
            if (stream == null) {
                found(ctx);
                throw ApiException.invalid("stream", "response " + id + " cannot be streamed: only a background "
                        + "response created with stream: true can, while it runs and for a while after");
            }
            long startingAfter = startingAfter(ctx.queryParam("starting_after"));
            try {
                SseWriter client = new SseWriter(ctx);
                client.open();
                stream.replay(client, startingAfter, keepAliveMillis);
            } catch (java.io.IOException clientGone) {
                // nothing to cancel: the response runs on
            }
            return;
        }
        if (ctx.queryParam("starting_after") != null) {
            throw ApiException.invalid("starting_after", "starting_after applies to stream=true");
        }
        Json.respond(ctx, 200, found(ctx).response());
    }

    private static long startingAfter(String value) {
        if (value == null) {
            return -1;
        }
        try {
            long after = Long.parseLong(value.trim());
            if (after >= -1) {
                return after;
            }
        } catch (NumberFormatException e) {
            // below
        }
        throw ApiException.invalid("starting_after", "starting_after must be an event's sequence_number (0 or more), got "
                + value);
    }

    public void delete(Context ctx) {
        String id = ctx.pathParam("id");
        if (!store.remove(id)) {
            throw notFound(id);
        }
        Json.respond(ctx, 200, Json.object().put("id", id).put("object", "response").put("deleted", true));
    }

    /**
     * Cancels a background response that is still running and answers its cancelled state; one that
     * already ended is answered as it is; one that was not a background response is a 400.
     */
    public void cancel(Context ctx) throws InterruptedException {
        boolean cancelled = running.cancel(ctx.pathParam("id"));
        ObjectNode response = found(ctx).response();
        if (!cancelled && !response.path("background").asBoolean(false)) {
            throw ApiException.badRequest("only background responses can be cancelled; this response was answered "
                    + "before it was stored");
        }
        Json.respond(ctx, 200, response);
    }

    public void inputItems(Context ctx) {
        List<JsonNode> items = new ArrayList<>();
        found(ctx).input().forEach(items::add);
        Json.respond(ctx, 200, ItemPage.of(ctx, items, "response " + ctx.pathParam("id")));
    }

    private ResponseStore.Found found(Context ctx) {
        String id = ctx.pathParam("id");
        ResponseStore.Found found = store.find(id);
        if (found == null) {
            throw notFound(id);
        }
        return found;
    }

    private static ApiException notFound(String id) {
        return ApiException.notFound("Response with id '" + id + "' not found.");
    }
}
