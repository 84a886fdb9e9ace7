package dev.coil.engine.tokenizer;

import java.util.Map;
import java.util.Objects;

/**
 * One turn of a conversation as chat templates see it: {@code {"role": ..., "content": ..., ...}}.
 *
 * @param role "system", "user", "assistant", "tool", ... (templates decide which they accept)
 * @param content the text of the turn
 * @param fields the turn's other keys, as templates read them: an assistant turn's {@code tool_calls}, a
 *        tool turn's {@code tool_call_id} and {@code name} (values as Jackson reads JSON: maps, lists,
 *        strings, numbers)
 */
public record ChatMessage(String role, String content, Map<String, Object> fields) {

    public ChatMessage {
        Objects.requireNonNull(role, "role");
        Objects.requireNonNull(content, "content");
        fields = Map.copyOf(fields);
    }

    public ChatMessage(String role, String content) {
        this(role, content, Map.of());
    }

    public static ChatMessage system(String content) {
        return new ChatMessage("system", content);
    }

    public static ChatMessage user(String content) {
        return new ChatMessage("user", content);
    }

    public static ChatMessage assistant(String content) {
        return new ChatMessage("assistant", content);
    }
}
