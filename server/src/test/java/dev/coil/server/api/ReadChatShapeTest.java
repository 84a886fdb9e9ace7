package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent;
import dev.coil.engine.runner.FinishReason;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The chunks a read chat answer streams join to the answer it gives whole: reasoning, content and
 * calls, for outputs that mix the three, cut into tokens every which way. Reasoning is split off before
 * calls are read.
 */
class ReadChatShapeTest {

    private static final String CALL = "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"
            + "</tool_call>";

    @Test
    void reasoningThenCallsComeBackAsTheirOwnFields() {
        ObjectNode message = whole(shape(true, true), "Paris, then.</think>\n\nChecking.\n" + CALL, FinishReason.STOP)
                .get("message").deepCopy();
        assertThat(message.get("reasoning").asText()).isEqualTo("Paris, then.");
        assertThat(message.get("reasoning_content").asText()).isEqualTo("Paris, then.");
        assertThat(message.get("content").asText()).isEqualTo("\n\nChecking.");
        assertThat(message.at("/tool_calls/0/function/name").asText()).isEqualTo("get_weather");
        assertThat(message.at("/tool_calls/0/function/arguments").asText()).isEqualTo("{\"city\":\"Paris\"}");

        // A call inside the reasoning is part of the reasoning.
        JsonNode thought = whole(shape(true, true), "maybe " + CALL + "</think>No call.", FinishReason.STOP);
        assertThat(thought.at("/message/reasoning").asText()).isEqualTo("maybe " + CALL);
        assertThat(thought.at("/message/content").asText()).isEqualTo("No call.");
        assertThat(thought.at("/message").has("tool_calls")).isFalse();
        assertThat(thought.get("finish_reason").asText()).isEqualTo("stop");

        // An answer that ends while it could still be opening a block, or a call, is content.
        for (boolean calls : new boolean[] {true, false}) {
            assertThat(whole(shape(false, calls), "<thi", FinishReason.LENGTH).at("/message/content").asText())
                    .isEqualTo("<thi");
            assertThat(whole(shape(false, calls), "Hi <tool_", FinishReason.LENGTH).at("/message/content").asText())
                    .isEqualTo("Hi <tool_");
        }
    }

    /**
     * Under qwen3_coder, a {@code <tool_call>} ends the reasoning as {@code </think>} does (a model that
     * calls before closing its block still calls), streamed or whole; a closed block is read as before.
     */
    @Test
    void aTaggedCallEndsTheReasoning() {
        String call = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n"
                + "</tool_call>";
        for (String output : List.of("Paris, then.\n" + call, "Paris, then.</think>\nChecking.\n" + call,
                "<tool_call>\n<function=now>\n</function>\n</tool_call>", "Only reasoning, <tool_cal")) {
            ReadChatShape tagged = new ReadChatShape(new ChatShape(new TokenSpelling(null, false), false, -1),
                    ReasoningFormat.THINK, true, ToolCallFormat.QWEN3_CODER);
            JsonNode whole = tagged.choice(stateOf(output, FinishReason.STOP));
            Random random = new Random(output.hashCode());
            for (int trial = 0; trial < 20; trial++) {
                ReadChatShape again = new ReadChatShape(new ChatShape(new TokenSpelling(null, false), false, -1),
                        ReasoningFormat.THINK, true, ToolCallFormat.QWEN3_CODER);
                List<String> tokens = StreamCuts.random(output, random);
                assertThat(streamed(again, tokens, FinishReason.STOP)).as("%s as %s", output, tokens)
                        .isEqualTo(joinable(whole));
            }
        }
        JsonNode early = new ReadChatShape(new ChatShape(new TokenSpelling(null, false), false, -1),
                ReasoningFormat.THINK, true, ToolCallFormat.QWEN3_CODER).choice(stateOf("Paris, then.\n" + call,
                FinishReason.STOP));
        assertThat(early.at("/message/reasoning").asText()).isEqualTo("Paris, then.\n");
        assertThat(early.at("/message/tool_calls/0/function/name").asText()).isEqualTo("get_weather");
        assertThat(early.at("/message/tool_calls/0/function/arguments").asText()).isEqualTo("{\"city\":\"Paris\"}");
        assertThat(early.get("finish_reason").asText()).isEqualTo("tool_calls");
        JsonNode closed = new ReadChatShape(new ChatShape(new TokenSpelling(null, false), false, -1),
                ReasoningFormat.THINK, true, ToolCallFormat.QWEN3_CODER).choice(stateOf(
                "Paris, then.</think>\nChecking.\n" + call, FinishReason.STOP));
        assertThat(closed.at("/message/reasoning").asText()).isEqualTo("Paris, then.");
        assertThat(closed.at("/message/content").asText()).isEqualTo("\nChecking.");
        // Under hermes a call inside the reasoning stays reasoning (the test above).
    }

    private static ChoiceState stateOf(String output, FinishReason reason) {
        ChoiceState state = new ChoiceState(0, 0, new int[0], null);
        state.accept(new EngineEvent.Token(1, output, output, null));
        state.accept(finished(reason));
        return state;
    }

    @Test
    void theStreamJoinsToTheWholeAnswer() {
        List<String> outputs = List.of(
                "Paris, then.</think>\n\nChecking.\n" + CALL + "\n" + CALL,
                "all reasoning, cut short",
                "</think>" + CALL,
                "<think>own block</think> text <tool_call>not json</tool_call> and " + CALL,
                "plain answer, no tags \uD83D\uDE00",
                "Two.\n" + CALL + "<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": [1, \"</tool\", {\"y\": \"\uD83D\uDE00\"",
                "<thi");
        Random random = new Random(3);
        for (String output : outputs) {
            for (boolean opened : new boolean[] {true, false}) {
                for (boolean calls : new boolean[] {true, false}) {
                    for (FinishReason reason : new FinishReason[] {FinishReason.STOP, FinishReason.LENGTH}) {
                        JsonNode whole = whole(shape(opened, calls), output, reason);
                        for (int trial = 0; trial < 20; trial++) {
                            List<String> tokens = StreamCuts.random(output, random);
                            assertThat(streamed(shape(opened, calls), tokens, reason))
                                    .as("%s as %s, opened %s, calls %s", output, tokens, opened, calls)
                                    .isEqualTo(joinable(whole));
                        }
                    }
                }
            }
        }
    }

    private static ReadChatShape shape(boolean opened, boolean calls) {
        return new ReadChatShape(new ChatShape(new TokenSpelling(null, false), false, -1), ReasoningFormat.THINK, opened,
                calls ? ToolCallFormat.HERMES : null);
    }

    private static JsonNode whole(ReadChatShape shape, String output, FinishReason reason) {
        ChoiceState state = new ChoiceState(0, 0, new int[0], null);
        state.accept(new EngineEvent.Token(1, output, output, null));
        state.accept(finished(reason));
        return shape.choice(state);
    }

    /** What a stream carries of a whole answer: reasoning, content (null as ""), calls without ids. */
    private static ObjectNode joinable(JsonNode choice) {
        JsonNode message = choice.get("message");
        ObjectNode joined = Json.object();
        joined.put("reasoning", message.path("reasoning").asText(""));
        joined.put("content", message.path("content").asText(""));
        ArrayNode calls = joined.putArray("calls");
        message.path("tool_calls").forEach(call -> calls.add(call.get("function")));
        joined.put("finish_reason", choice.get("finish_reason").asText());
        return joined;
    }

    private static ObjectNode streamed(ReadChatShape shape, List<String> tokens, FinishReason reason) {
        ChoiceState state = new ChoiceState(0, 0, new int[0], null);
        List<JsonNode> chunks = new ArrayList<>();
        chunks.add(shape.opening(state));
        for (int i = 0; i < tokens.size() - 1; i++) {
            state.accept(new EngineEvent.Token(1, tokens.get(i), tokens.get(i), null));
            chunks.add(shape.delta(state, tokens.get(i), null));
        }
        String lastText = tokens.getLast();
        state.accept(new EngineEvent.Token(1, lastText, lastText, null));
        state.accept(finished(reason));
        chunks.add(shape.last(state, lastText));
        StringBuilder reasoning = new StringBuilder();
        StringBuilder reasoningContent = new StringBuilder();
        StringBuilder content = new StringBuilder();
        ObjectNode joined = Json.object();
        List<JsonNode> calls = new ArrayList<>();
        for (JsonNode chunk : chunks) {
            if (chunk == null) {
                continue;
            }
            JsonNode delta = chunk.get("delta");
            reasoning.append(delta.path("reasoning").asText(""));
            reasoningContent.append(delta.path("reasoning_content").asText(""));
            content.append(delta.path("content").asText(""));
            StreamedToolCalls.join(delta, calls);
            if (!chunk.get("finish_reason").isNull()) {
                joined.put("finish_reason", chunk.get("finish_reason").asText());
            }
        }
        assertThat(reasoningContent.toString()).isEqualTo(reasoning.toString());
        ObjectNode result = Json.object();
        result.put("reasoning", reasoning.toString());
        result.put("content", content.toString());
        result.set("calls", Json.MAPPER.createArrayNode().addAll(calls));
        result.put("finish_reason", joined.path("finish_reason").asText());
        return result;
    }

    private static EngineEvent.Finished finished(FinishReason reason) {
        return new EngineEvent.Finished("", reason, null, null, new EngineEvent.Usage(0, 0, 0), null, List.of());
    }
}
