package dev.coil.server.api;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.tokenizer.ChatMessage;
import dev.coil.engine.tokenizer.ChatTemplate;
import dev.coil.server.ServedModel;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A conversation turned into prompt tokens through the model's chat template, as transformers'
 * {@code apply_chat_template} does: {@code messages} (role and content; content a string or a list
 * of text parts), {@code add_generation_prompt} (default true, false when the last message is
 * continued), vLLM's {@code continue_final_message} and {@code chat_template_kwargs}.
 */
final class ChatPrompt {

    private ChatPrompt() {
    }

    static int[] tokens(Fields fields, ServedModel model, boolean addSpecialTokens) {
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
        Map<String, Object> variables = kwargs == null ? Map.of()
                : Json.MAPPER.convertValue(kwargs, new TypeReference<Map<String, Object>>() { });
        String text;
        try {
            text = continueFinal ? template.renderContinuing(messages, variables)
                    : template.render(messages, generationPrompt, variables);
        } catch (IllegalArgumentException rejected) {
            throw ApiException.invalid("messages", rejected.getMessage());
        }
        int[] tokens = model.encode(text, addSpecialTokens);
        if (tokens.length == 0) {
            throw ApiException.invalid("messages", "the messages render to an empty prompt");
        }
        return tokens;
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
            messages.add(new ChatMessage(role.textValue(), content(message.get("content"), where + ".content")));
        }
        return messages;
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
