package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import java.util.List;

/**
 * OpenAI's Conversations API over the {@link ConversationStore}: POST /v1/conversations (with up to 20
 * {@code items} and {@code metadata}), GET, POST (new metadata) and DELETE /v1/conversations/{id};
 * POST /v1/conversations/{id}/items (up to 20 items added, answered as a list of them),
 * GET /v1/conversations/{id}/items (a list page: {@link ItemPage}), GET and DELETE
 * /v1/conversations/{id}/items/{item_id} (a deleted item answers the conversation). Items are read as
 * the Responses API reads its input ({@link ResponseInput}). A conversation or item not kept is a 404;
 * with --response-store 0 the server keeps none, and creating one is a 400 that says so.
 */
public final class ConversationsHandler {

    private final ConversationStore store;
    private final long maxBodyBytes;

    public ConversationsHandler(ConversationStore store, long maxBodyBytes) {
        this.store = store;
        this.maxBodyBytes = maxBodyBytes;
    }

    public void create(Context ctx) {
        if (!store.enabled()) {
            throw ApiException.badRequest("this server keeps no conversations (--response-store 0)");
        }
        ObjectNode body = ctx.req().getContentLengthLong() == 0 ? Json.object() : JsonBody.read(ctx, maxBodyBytes);
        JsonNode given = body.get("items");
        ArrayNode items = given == null || given.isNull() ? Json.object().arrayNode() : items(given, false);
        Json.respond(ctx, 200, store.create(ConversationStore.metadata(body.get("metadata")), items));
    }

    public void retrieve(Context ctx) {
        Json.respond(ctx, 200, conversation(ctx));
    }

    public void update(Context ctx) {
        ObjectNode body = JsonBody.read(ctx, maxBodyBytes);
        if (!body.has("metadata")) {
            throw ApiException.invalid("metadata", "metadata is required: the conversation's new metadata");
        }
        ObjectNode updated = store.update(id(ctx), ConversationStore.metadata(body.get("metadata")));
        Json.respond(ctx, 200, updated == null ? conversation(ctx) : updated);
    }

    public void delete(Context ctx) {
        String id = id(ctx);
        if (!store.delete(id)) {
            throw notFound(id);
        }
        Json.respond(ctx, 200, Json.object().put("id", id).put("object", "conversation.deleted").put("deleted", true));
    }

    /** Adds the body's items at the conversation's end; answers them as a list. */
    public void addItems(Context ctx) {
        ObjectNode body = JsonBody.read(ctx, maxBodyBytes);
        ArrayNode items = items(body.get("items"), true);
        if (!store.add(id(ctx), items)) {
            throw notFound(id(ctx));
        }
        Json.respond(ctx, 200, ItemPage.page(items, false));
    }

    public void listItems(Context ctx) {
        Json.respond(ctx, 200, ItemPage.of(ctx, items(ctx), "conversation " + id(ctx)));
    }

    public void retrieveItem(Context ctx) {
        JsonNode item = store.item(id(ctx), ctx.pathParam("item_id"));
        if (item == null) {
            throw itemNotFound(ctx);
        }
        Json.respond(ctx, 200, item);
    }

    /** Removes the item; answers the conversation, as OpenAI does. */
    public void deleteItem(Context ctx) {
        if (!store.removeItem(id(ctx), ctx.pathParam("item_id"))) {
            throw itemNotFound(ctx);
        }
        Json.respond(ctx, 200, conversation(ctx));
    }

    /** The request's items: an array of at most 20 input items (at least one when {@code required}). */
    private static ArrayNode items(JsonNode given, boolean required) {
        if (given == null || !given.isArray() || (required && given.isEmpty())) {
            throw ApiException.invalid("items", "items must be " + (required ? "a non-empty" : "an") + " array of "
                    + "items (messages, function_call and function_call_output items), got " + Fields.typeName(given));
        }
        if (given.size() > ConversationStore.MAX_ITEMS_ADDED) {
            throw ApiException.invalid("items", "at most " + ConversationStore.MAX_ITEMS_ADDED + " items are added at a "
                    + "time, got " + given.size());
        }
        return ResponseInput.items(given, "items");
    }

    private ObjectNode conversation(Context ctx) {
        ObjectNode conversation = store.find(id(ctx));
        if (conversation == null) {
            throw notFound(id(ctx));
        }
        return conversation;
    }

    private List<JsonNode> items(Context ctx) {
        List<JsonNode> items = store.items(id(ctx));
        if (items == null) {
            throw notFound(id(ctx));
        }
        return items;
    }

    private static String id(Context ctx) {
        return ctx.pathParam("id");
    }

    /** OpenAI's answer for a conversation it does not have. */
    private static ApiException notFound(String id) {
        return notFound(id, null);
    }

    /** OpenAI's answer for a conversation it does not have, naming the request's field {@code param} (or none). */
    static ApiException notFound(String id, String param) {
        return new ApiException(404, "invalid_request_error", param, "not_found",
                "Conversation with id '" + id + "' not found.");
    }

    private ApiException itemNotFound(Context ctx) {
        conversation(ctx);
        return ApiException.notFound("Item with id '" + ctx.pathParam("item_id") + "' not found in conversation '"
                + id(ctx) + "'.");
    }
}
