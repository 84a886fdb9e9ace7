package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * The output items of a Responses API answer, made from the chat answer it stands for: the reasoning
 * a reasoning parser split off (a {@code reasoning} item of one {@code reasoning_text} part), the
 * text (a {@code message} of one {@code output_text} part), and each call (a {@code function_call}).
 * Whole, from the chat message ({@link #of}); streamed, from the chat deltas in order ({@link #feed}),
 * each item opened when its first piece comes (output_item.added, content_part.added), its pieces
 * sent as deltas (output_text, reasoning_text, function_call_arguments), and closed when another kind
 * of piece starts or the answer ends (the .done events), so that the items come out as the whole
 * answer's would.
 */
final class ResponseOutputItems {

    /** Where the typed events go (the answer numbers and writes them). */
    interface Events {
        void send(String type, ObjectNode event) throws IOException;
    }

    private final List<ObjectNode> items = new ArrayList<>();
    /** The item being streamed (its kind in "type"), or null. */
    private ObjectNode open;
    /** The open item's text so far: a message's or a reasoning item's text, a call's arguments. */
    private final StringBuilder openText = new StringBuilder();

    /** The items of a whole chat {@code message}: its reasoning, its text, its calls; an empty message when none. */
    static ArrayNode of(JsonNode message, boolean cut) {
        ArrayNode items = Json.object().arrayNode();
        String reasoning = message.path("reasoning_content").asText("");
        if (!reasoning.isEmpty()) {
            items.add(reasoning(reasoning, "completed"));
        }
        JsonNode calls = message.path("tool_calls");
        String content = message.path("content").asText("");
        if (!content.isEmpty() || calls.isEmpty() && items.isEmpty()) {
            items.add(message(content, cut ? "incomplete" : "completed"));
        }
        for (JsonNode call : calls) {
            items.add(call(call.get("id").asText(), call.at("/function/name").asText(),
                    call.at("/function/arguments").asText(), "completed"));
        }
        return items;
    }

    /** The items as streamed so far (the open one as it stands). */
    ArrayNode items() {
        ArrayNode array = Json.object().arrayNode();
        items.forEach(array::add);
        return array;
    }

    /** One chat delta's pieces: reasoning, text, calls' starts and arguments. */
    void feed(JsonNode delta, Events events) throws IOException {
        String reasoning = delta.path("reasoning_content").asText("");
        if (!reasoning.isEmpty()) {
            openIfNot("reasoning", events);
            piece("response.reasoning_text.delta", reasoning, events);
        }
        String content = delta.path("content").asText("");
        if (!content.isEmpty()) {
            openIfNot("message", events);
            piece("response.output_text.delta", content, events);
        }
        for (JsonNode call : delta.path("tool_calls")) {
            if (call.has("id")) {
                close(false, events);
                open = call(call.get("id").asText(), call.at("/function/name").asText(), "", "in_progress");
                added(events);
            }
            String arguments = call.at("/function/arguments").asText("");
            if (!arguments.isEmpty() && open != null && open.get("type").asText().equals("function_call")) {
                piece("response.function_call_arguments.delta", arguments, events);
            }
        }
    }

    /** The answer ended ({@code cut}: by max_output_tokens): the open item closed; an empty message when no item came. */
    void finish(boolean cut, Events events) throws IOException {
        if (open == null && items.isEmpty()) {
            openIfNot("message", events);
        }
        close(cut, events);
    }

    private void openIfNot(String type, Events events) throws IOException {
        if (open != null && open.get("type").asText().equals(type)) {
            return;
        }
        close(false, events);
        open = type.equals("message") ? message("", "in_progress") : reasoning("", "in_progress");
        ((ArrayNode) open.get("content")).removeAll();
        added(events);
        events.send("response.content_part.added", part().set("part", part(type, "")));
    }

    /** Sends the open item's output_item.added and counts it among the items. */
    private void added(Events events) throws IOException {
        openText.setLength(0);
        items.add(open);
        events.send("response.output_item.added", Json.object().put("output_index", items.size() - 1)
                .set("item", open.deepCopy()));
    }

    private void piece(String type, String text, Events events) throws IOException {
        openText.append(text);
        ObjectNode event = open.get("type").asText().equals("function_call")
                ? Json.object().put("item_id", open.get("id").asText()).put("output_index", items.size() - 1)
                : part();
        event.put("delta", text);
        if (type.equals("response.output_text.delta")) {
            event.putArray("logprobs");
        }
        events.send(type, event);
    }

    /** Closes the open item: its whole text in place, and its .done events. */
    private void close(boolean cut, Events events) throws IOException {
        if (open == null) {
            return;
        }
        ObjectNode item = open;
        open = null;
        String type = item.get("type").asText();
        String text = openText.toString();
        ObjectNode done;
        switch (type) {
            case "function_call" -> {
                item.put("arguments", text);
                item.put("status", "completed");
                events.send("response.function_call_arguments.done", Json.object().put("item_id", item.get("id").asText())
                        .put("output_index", items.size() - 1).put("name", item.get("name").asText())
                        .put("arguments", text));
            }
            default -> {
                boolean message = type.equals("message");
                item.put("status", message && cut ? "incomplete" : "completed");
                item.putArray("content").add(part(type, text));
                done = partOf(item).put("text", text);
                if (message) {
                    done.putArray("logprobs");
                }
                events.send(message ? "response.output_text.done" : "response.reasoning_text.done", done);
                events.send("response.content_part.done", partOf(item).set("part", part(type, text)));
            }
        }
        events.send("response.output_item.done", Json.object().put("output_index", items.size() - 1)
                .set("item", item.deepCopy()));
    }

    /** The fields of an event about the open item's one part. */
    private ObjectNode part() {
        return partOf(open);
    }

    /** The fields of an event about {@code item}'s one part: the open item, or the one being closed, is the last. */
    private ObjectNode partOf(ObjectNode item) {
        return Json.object().put("item_id", item.get("id").asText()).put("output_index", items.size() - 1)
                .put("content_index", 0);
    }

    private static ObjectNode part(String itemType, String text) {
        if (itemType.equals("reasoning")) {
            return Json.object().put("type", "reasoning_text").put("text", text);
        }
        ObjectNode part = Json.object().put("type", "output_text").put("text", text);
        part.putArray("annotations");
        part.putArray("logprobs");
        return part;
    }

    private static ObjectNode message(String text, String status) {
        ObjectNode message = Json.object().put("id", "msg_" + hex()).put("type", "message").put("role", "assistant")
                .put("status", status);
        message.putArray("content").add(part("message", text));
        return message;
    }

    private static ObjectNode reasoning(String text, String status) {
        ObjectNode reasoning = Json.object().put("id", "rs_" + hex()).put("type", "reasoning").put("status", status);
        reasoning.putArray("summary");
        reasoning.putArray("content").add(part("reasoning", text));
        return reasoning;
    }

    private static ObjectNode call(String callId, String name, String arguments, String status) {
        return Json.object().put("id", "fc_" + hex()).put("type", "function_call").put("call_id", callId)
                .put("name", name).put("arguments", arguments).put("status", status);
    }

    private static String hex() {
        return UUID.randomUUID().toString().replace("-", "");
    }
}
