package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The Responses API's routes over stored responses ({@link ResponseStore}): GET /v1/responses/{id}
 * (the response as it was answered), DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items
 * (its input items, OpenAI's list page: limit 1-100, default 20; order desc by default, or asc;
 * after an item id), and POST /v1/responses/{id}/cancel, which cancels a background response still
 * running (a 400 for one that was not background). An id not stored is a 404.
 */
public final class StoredResponsesHandler {

    private final ResponseStore store;
    private final BackgroundResponses running;

    public StoredResponsesHandler(ResponseStore store, BackgroundResponses running) {
        this.store = store;
        this.running = running;
    }

    public void retrieve(Context ctx) {
        if (Boolean.parseBoolean(ctx.queryParam("stream"))) {
            throw ApiException.invalid("stream", "stream is not supported: a stored response is read back whole");
        }
        Json.respond(ctx, 200, found(ctx).response());
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
        String order = ctx.queryParam("order") == null ? "desc" : ctx.queryParam("order");
        if (!order.equals("asc") && !order.equals("desc")) {
            throw ApiException.invalid("order", "order must be \"asc\" or \"desc\", got \"" + order + "\"");
        }
        if (order.equals("desc")) {
            Collections.reverse(items);
        }
        int limit = limit(ctx.queryParam("limit"));
        String after = ctx.queryParam("after");
        int from = 0;
        if (after != null) {
            from = -1;
            for (int i = 0; i < items.size() && from < 0; i++) {
                if (items.get(i).path("id").asText().equals(after)) {
                    from = i + 1;
                }
            }
            if (from < 0) {
                throw ApiException.invalid("after", "no input item " + after + " in response " + ctx.pathParam("id"));
            }
        }
        int to = Math.min(items.size(), from + limit);
        ObjectNode page = Json.object().put("object", "list");
        ArrayNode data = page.putArray("data");
        items.subList(from, to).forEach(data::add);
        page.put("first_id", data.isEmpty() ? null : data.get(0).path("id").asText());
        page.put("last_id", data.isEmpty() ? null : data.get(data.size() - 1).path("id").asText());
        page.put("has_more", to < items.size());
        Json.respond(ctx, 200, page);
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

    private static int limit(String given) {
        if (given == null) {
            return 20;
        }
        try {
            int limit = Integer.parseInt(given);
            if (limit >= 1 && limit <= 100) {
                return limit;
            }
        } catch (NumberFormatException e) {
            // the message below says what is taken
        }
        throw ApiException.invalid("limit", "limit must be an integer from 1 to 100, got \"" + given + "\"");
    }
}
