package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;

/** A stream's tool-call pieces joined as OpenAI's clients join them, checked on the way. */
final class StreamedToolCalls {

    private StreamedToolCalls() {
    }

    /**
     * Adds the {@code tool_calls} pieces of one chunk's {@code delta} to {@code calls} (their
     * {@code function} objects): a new {@code index} starts a call and carries its id, type and name;
     * the last call's index (with no id) adds to its arguments.
     */
    static void join(JsonNode delta, List<JsonNode> calls) {
        for (JsonNode piece : delta.path("tool_calls")) {
            int index = piece.get("index").asInt();
            if (index == calls.size()) {
                assertThat(piece.get("id").asText()).matches("chatcmpl-tool-[0-9a-f]{32}");
                assertThat(piece.get("type").asText()).isEqualTo("function");
                assertThat(piece.at("/function/name").isTextual()).as(piece.toString()).isTrue();
                calls.add(piece.get("function").deepCopy());
            } else {
                assertThat(index).as(piece.toString()).isEqualTo(calls.size() - 1);
                assertThat(piece.has("id")).as(piece.toString()).isFalse();
                ObjectNode function = (ObjectNode) calls.get(index);
                function.put("arguments", function.get("arguments").asText() + piece.at("/function/arguments").asText());
            }
        }
    }
}
