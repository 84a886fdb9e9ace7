package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * One page of a list of items with ids, as OpenAI pages a response's input items and a conversation's
 * items: the query's {@code order} (desc, the default, newest first; or asc), {@code limit} (1-100,
 * default 20) and {@code after} (the id of the item the page starts after); the page is
 * {@code {"object": "list", "data", "first_id", "last_id", "has_more"}}.
 */
final class ItemPage {

    private ItemPage() {
    }

    /** The page of {@code items} (oldest first) the query asks for; {@code owner} names their holder in errors. */
    static ObjectNode of(Context ctx, List<JsonNode> items, String owner) {
        String order = ctx.queryParam("order") == null ? "desc" : ctx.queryParam("order");
        if (!order.equals("asc") && !order.equals("desc")) {
            throw ApiException.invalid("order", "order must be \"asc\" or \"desc\", got \"" + order + "\"");
        }
        List<JsonNode> ordered = new ArrayList<>(items);
        if (order.equals("desc")) {
            Collections.reverse(ordered);
        }
        int limit = limit(ctx.queryParam("limit"));
        String after = ctx.queryParam("after");
        int from = 0;
        if (after != null) {
            from = -1;
            for (int i = 0; i < ordered.size() && from < 0; i++) {
                if (ordered.get(i).path("id").asText().equals(after)) {
                    from = i + 1;
                }
            }
            if (from < 0) {
                throw ApiException.invalid("after", "no item " + after + " in " + owner);
            }
        }
        int to = Math.min(ordered.size(), from + limit);
        return page(ordered.subList(from, to), to < ordered.size());
    }

    /** A page holding {@code items}, in that order. */
    static ObjectNode page(Iterable<JsonNode> items, boolean hasMore) {
        ObjectNode page = Json.object().put("object", "list");
        ArrayNode data = page.putArray("data");
        items.forEach(data::add);
        page.put("first_id", data.isEmpty() ? null : data.get(0).path("id").asText());
        page.put("last_id", data.isEmpty() ? null : data.get(data.size() - 1).path("id").asText());
        page.put("has_more", hasMore);
        return page;
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
