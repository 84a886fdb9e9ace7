package dev.coil.server.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.tokenizer.ChatMessage;
import dev.coil.engine.tokenizer.ChatTemplate;
import dev.coil.server.ServedModel;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A conversation turned into prompt tokens through the model's chat template, as transformers'
 * {@code apply_chat_template} does: {@code messages} (role and content; content a string or a list
 * of text parts; an assistant turn's {@code tool_calls}, a tool turn's {@code tool_call_id} and
 * {@code name}), {@code add_generation_prompt} (default true, false when the last message is
 * continued), vLLM's {@code continue_final_message} and {@code chat_template_kwargs}, and the
 * request's {@code tools}.
 */
final class ChatPrompt {

    private ChatPrompt() {
    }

    /**
     * Sets the template variable {@code enable_thinking} (what Qwen 3's and Nemotron 3's templates read to
     * open or close the reasoning block) in a chat request's {@code chat_template_kwargs}, unless the
     * request gives it there itself: how the Messages API's {@code thinking} and the Responses API's
     * {@code reasoning.effort} reach the template.
     */
    static void setThinking(ObjectNode chat, boolean enabled) {
        JsonNode given = chat.get("chat_template_kwargs");
        ObjectNode kwargs = given instanceof ObjectNode object ? object : Json.object();
        if (!kwargs.has("enable_thinking")) {
            kwargs.put("enable_thinking", enabled);
        }
        if (given == null || given.isNull()) {
            chat.set("chat_template_kwargs", kwargs);
        }
    }

    static int[] tokens(Fields fields, ServedModel model, boolean addSpecialTokens) {
        return tokens(text(fields, model), model, addSpecialTokens);
    }

    /** The rendered prompt's tokens. */
    static int[] tokens(String text, ServedModel model, boolean addSpecialTokens) {
        int[] tokens = model.encode(text, addSpecialTokens);
        if (tokens.length == 0) {
            throw ApiException.invalid("messages", "the messages render to an empty prompt");
        }
        return tokens;
    }

    /** The conversation rendered through the chat template, as text. */
    static String text(Fields fields, ServedModel model) {
        ChatTemplate template = model.chatTemplate();
        if (template == null) {
            throw ApiException.invalid("messages", "this model has no chat template; use /v1/completions with a prompt");
        }
        List<ChatMessage> messages = messages(fields);
        boolean continueFinal = fields.bool("continue_final_message", false);
        boolean generationPrompt = fields.bool("add_generation_prompt", !continueFinal);
        if (continueFinal && generationPrompt) {
            throw ApiException.invalid("continue_final_message",
                    "continue_final_message and add_generation_prompt cannot both be true");
        }
        ObjectNode kwargs = fields.object("chat_template_kwargs");
        Map<String, Object> variables = new HashMap<>(ToolCalls.templateVariables(fields));
        if (kwargs != null) {
            variables.putAll(Json.MAPPER.convertValue(kwargs, new TypeReference<Map<String, Object>>() { }));
        }
        try {
            return continueFinal ? template.renderContinuing(messages, variables)
                    : template.render(messages, generationPrompt, variables);
        } catch (IllegalArgumentException rejected) {
            throw ApiException.invalid("messages", rejected.getMessage());
        }
    }

    static List<ChatMessage> messages(Fields fields) {
        JsonNode array = fields.get("messages");
        if (array == null) {
            throw ApiException.invalid("messages", "messages is required: an array of {\"role\", \"content\"} objects");
        }
        if (!array.isArray() || array.isEmpty()) {
            throw ApiException.invalid("messages", "messages must be a non-empty array of {\"role\", \"content\"} "
                    + "objects, got " + (array.isArray() ? "an empty array" : Fields.typeName(array)));
        }
        List<ChatMessage> messages = new ArrayList<>(array.size());
        for (int i = 0; i < array.size(); i++) {
            String where = "messages[" + i + "]";
            if (!(array.get(i) instanceof ObjectNode message)) {
                throw ApiException.invalid(where, where + " must be an object, got " + Fields.typeName(array.get(i)));
            }
            JsonNode role = message.get("role");
            if (role == null || !role.isTextual() || role.textValue().isEmpty()) {
                throw ApiException.invalid(where + ".role", where + ".role must be a non-empty string");
            }
            messages.add(new ChatMessage(role.textValue(), content(message.get("content"), where + ".content"),
                    otherFields(message, where)));
        }
        return messages;
    }

    /**
     * The keys of a turn the template may read besides role and content: {@code tool_calls} (each
     * call's {@code function.arguments}, a JSON string in OpenAI's API, read into the object it spells,
     * as vLLM hands templates a dict), {@code tool_call_id} and {@code name}.
     */
    private static Map<String, Object> otherFields(ObjectNode message, String where) {
        Map<String, Object> fields = new LinkedHashMap<>();
        JsonNode calls = message.get("tool_calls");
        if (calls != null && !calls.isNull()) {
            if (!calls.isArray()) {
                throw ApiException.invalid(where + ".tool_calls", where + ".tool_calls must be an array, got "
                        + Fields.typeName(calls));
            }
            ArrayNode read = calls.deepCopy();
            for (JsonNode call : read) {
                JsonNode arguments = call.path("function").path("arguments");
                if (arguments.isTextual() && call.get("function") instanceof ObjectNode function) {
                    try {
                        function.set("arguments", Json.MAPPER.readTree(arguments.textValue()));
                    } catch (JsonProcessingException notJson) {
                        // left as the string it is
                    }
                }
            }
            fields.put("tool_calls", Json.MAPPER.convertValue(read, new TypeReference<List<Object>>() { }));
        }
        for (String name : List.of("tool_call_id", "name")) {
            JsonNode value = message.get(name);
            if (value != null && value.isTextual()) {
                fields.put(name, value.textValue());
            }
        }
        return fields;
    }

    /** A string, null (an assistant turn with no text), or text parts {@code [{"type": "text", "text": ...}]}. */
    private static String content(JsonNode content, String where) {
        if (content == null || content.isNull()) {
            return "";
        }
        if (content.isTextual()) {
            return content.textValue();
        }
        if (!content.isArray()) {
            throw ApiException.invalid(where, where + " must be a string or an array of text parts, got "
                    + Fields.typeName(content));
        }
        List<String> texts = new ArrayList<>();
        for (JsonNode part : content) {
            JsonNode type = part.get("type");
            JsonNode text = part.get("text");
            if (type == null || !"text".equals(type.asText()) || text == null || !text.isTextual()) {
                throw ApiException.invalid(where, where + ": only text parts {\"type\": \"text\", \"text\": \"...\"} "
                        + "are supported");
            }
            texts.add(text.textValue());
        }
        return String.join("\n", texts);
    }
}
