package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Set;
import java.util.UUID;

/**
 * The conversation of a Responses request: its {@code input} read into items as OpenAI lists them
 * (each with an id and a status; a string input one user message; a message's string content one
 * input_text part, or output_text for the assistant's), and items read into the chat messages they
 * stand for. Items are read once, here, with errors that name where they are ("input[2].role ..."),
 * so that a stored conversation, its previous responses' items before it, reads back without any.
 */
final class ResponseInput {

    private static final Set<String> ROLES = Set.of("user", "assistant", "system", "developer");
    private static final Set<String> TEXT_PARTS = Set.of("input_text", "output_text", "text");

    private ResponseInput() {
    }

    /** A new item or response id: {@code prefix} and 32 hex digits. */
    static String newId(String prefix) {
        return prefix + UUID.randomUUID().toString().replace("-", "");
    }

    /**
     * The items of a request's {@code input}: a string, or an array of messages (the type left out
     * means a message), function_call, function_call_output and reasoning items.
     */
    static ArrayNode items(JsonNode input) {
        if (input == null) {
            throw ApiException.invalid("input", "input is required: a string or an array of messages");
        }
        if (input.isTextual()) {
            ArrayNode items = Json.object().arrayNode();
            items.add(identified(message("user", textPart("input_text", input.textValue())), null));
            return items;
        }
        if (!input.isArray() || input.isEmpty()) {
            throw ApiException.invalid("input", "input must be a string or a non-empty array of messages, got "
                    + Fields.typeName(input));
        }
        return items(input, "input");
    }

    /** The items of the array {@code given}, field {@code param} of the request, each read as an input item. */
    static ArrayNode items(JsonNode given, String param) {
        ArrayNode items = Json.object().arrayNode();
        for (int i = 0; i < given.size(); i++) {
            items.add(item(given.get(i), param, param + "[" + i + "]"));
        }
        return items;
    }

    /** One input item, checked and given an id and a status where it has none; errors name {@code param}. */
    private static ObjectNode item(JsonNode given, String param, String where) {
        if (!given.isObject()) {
            throw ApiException.invalid(param, where + " must be a message object, got " + Fields.typeName(given));
        }
        String type = given.path("type").asText("message");
        ObjectNode item = switch (type) {
            case "function_call" -> Json.object().put("type", type)
                    .put("call_id", Fields.stringIn(given, "call_id", param, where))
                    .put("name", Fields.stringIn(given, "name", param, where))
                    .put("arguments", Fields.stringIn(given, "arguments", param, where));
            case "function_call_output" -> {
                JsonNode output = given.get("output");
                ObjectNode call = Json.object().put("type", type)
                        .put("call_id", Fields.stringIn(given, "call_id", param, where));
                call.set("output", output != null && output.isTextual() ? output : parts(output, false, param,
                        where + ".output"));
                yield call;
            }
            case "reasoning" -> given.deepCopy(); // kept for the listing; a turn's reasoning is not the conversation's
            case "message" -> {
                JsonNode role = given.get("role");
                if (role == null || !role.isTextual() || !ROLES.contains(role.textValue())) {
                    throw ApiException.invalid(param, where + ".role must be \"user\", \"assistant\", \"system\" or "
                            + "\"developer\"");
                }
                boolean assistant = role.textValue().equals("assistant");
                JsonNode content = given.get("content");
                yield message(role.textValue(), content != null && content.isTextual()
                        ? textPart(assistant ? "output_text" : "input_text", content.textValue())
                        : parts(content, assistant, param, where + ".content"));
            }
            default -> throw ApiException.invalid(param, where + ": items of type \"" + type + "\" are not "
                    + "supported; give messages, function_call and function_call_output items");
        };
        return identified(item, given.get("id"));
    }

    /** {@code item} with its id first ({@code id}, or a new one) and, but for reasoning, status completed. */
    private static ObjectNode identified(ObjectNode item, JsonNode id) {
        String type = item.get("type").textValue();
        String prefix = switch (type) {
            case "function_call" -> "fc_";
            case "function_call_output" -> "fco_";
            case "reasoning" -> "rs_";
            default -> "msg_";
        };
        ObjectNode identified = Json.object().put("id", id != null && id.isTextual() ? id.textValue() : newId(prefix));
        identified.setAll(item);
        if (!type.equals("reasoning")) {
            identified.put("status", "completed");
        }
        return identified;
    }

    private static ObjectNode message(String role, JsonNode content) {
        ObjectNode message = Json.object().put("type", "message").put("role", role);
        message.set("content", content.isArray() ? content : Json.object().arrayNode().add(content));
        return message;
    }

    private static ObjectNode textPart(String type, String text) {
        ObjectNode part = Json.object().put("type", type).put("text", text);
        if (type.equals("output_text")) {
            part.putArray("annotations");
        }
        return part;
    }

    /** A content array of text parts (input_text, output_text, text), checked; an assistant's read as output_text. */
    private static ArrayNode parts(JsonNode content, boolean assistant, String param, String where) {
        if (content == null || !content.isArray()) {
            throw ApiException.invalid(param, where + " must be a string or an array of text parts");
        }
        ArrayNode parts = Json.object().arrayNode();
        for (int j = 0; j < content.size(); j++) {
            JsonNode part = content.get(j);
            JsonNode type = part.get("type");
            if (type == null || !type.isTextual() || !TEXT_PARTS.contains(type.textValue())) {
                throw ApiException.invalid(param, where + "[" + j + "]: parts of type " + type + " are not supported; "
                        + "give input_text");
            }
            JsonNode text = part.get("text");
            if (text == null || !text.isTextual()) {
                throw ApiException.invalid(param, where + "[" + j + "].text must be a string");
            }
            parts.add(textPart(assistant ? "output_text" : "input_text", text.textValue()));
        }
        return parts;
    }

    /**
     * The chat messages of {@code instructions} (a system message first, or null) and the conversation's
     * items, read by {@link #items}: messages as chat's (developer as system; text parts joined),
     * function_call items as the assistant's tool_calls, function_call_output items as tool messages,
     * reasoning items left out, as chat leaves a turn's reasoning out.
     */
    static ArrayNode messages(String instructions, ArrayNode items) {
        ArrayNode messages = Json.object().arrayNode();
        if (instructions != null) {
            messages.addObject().put("role", "system").put("content", instructions);
        }
        for (JsonNode item : items) {
            switch (item.get("type").textValue()) {
                case "function_call" -> callsOf(messages).add(ToolCallShape.call(null, item.get("call_id").textValue(),
                        item.get("name").textValue(), item.get("arguments").textValue()));
                case "function_call_output" -> messages.addObject().put("role", "tool")
                        .put("tool_call_id", item.get("call_id").textValue()).put("content", text(item.get("output")));
                case "message" -> {
                    String role = item.get("role").textValue();
                    messages.addObject().put("role", role.equals("developer") ? "system" : role)
                            .put("content", text(item.get("content")));
                }
                default -> { } // reasoning
            }
        }
        return messages;
    }

    /** A string, or text parts' texts joined. */
    private static String text(JsonNode content) {
        if (content.isTextual()) {
            return content.textValue();
        }
        StringBuilder text = new StringBuilder();
        for (JsonNode part : content) {
            text.append(part.get("text").textValue());
        }
        return text.toString();
    }

    /**
     * The tool_calls array a function_call item joins: the last message's when it is the assistant's
     * (its text or calls just before), else a new assistant message's.
     */
    private static ArrayNode callsOf(ArrayNode messages) {
        JsonNode last = messages.isEmpty() ? null : messages.get(messages.size() - 1);
        if (last instanceof ObjectNode message && message.path("role").asText().equals("assistant")) {
            return message.has("tool_calls") ? (ArrayNode) message.get("tool_calls") : message.putArray("tool_calls");
        }
        ObjectNode message = messages.addObject().put("role", "assistant").put("content", "");
        return message.putArray("tool_calls");
    }
}
