package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * /v1/messages on the demo model: the answer is the chat answer of the conversation it stands for
 * (greedy), its stream Anthropic's events in order whose deltas make the whole answer, a named tool's
 * call a tool_use block whose input holds to its schema, tool_use and tool_result blocks in the
 * conversation the chat's tool_calls and tool messages, and errors Anthropic's objects.
 */
class MessagesTest {

    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @Test
    void theAnswerIsTheChatAnswerOfTheSameConversation() {
        JsonNode message = server.postJson("/v1/messages", """
                {"model": "coil-demo", "system": [{"type": "text", "text": "Answer briefly."}], "max_tokens": 12,
                 "temperature": 0, "messages": [{"role": "user", "content": "Name a package manager."},
                   {"role": "assistant", "content": [{"type": "text", "text": "apt"}]},
                   {"role": "user", "content": [{"type": "text", "text": "Another?"}]}]}""");
        JsonNode chat = server.postJson("/v1/chat/completions", """
                {"messages": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "Name a package manager."}, {"role": "assistant", "content": "apt"},
                  {"role": "user", "content": "Another?"}], "max_tokens": 12, "temperature": 0}""");
        assertThat(message.get("type").asText()).isEqualTo("message");
        assertThat(message.get("role").asText()).isEqualTo("assistant");
        assertThat(message.get("id").asText()).startsWith("msg_");
        assertThat(message.at("/content/0/type").asText()).isEqualTo("text");
        assertThat(message.at("/content/0/text").asText()).isEqualTo(chat.at("/choices/0/message/content").asText())
                .isNotEmpty();
        boolean cut = chat.at("/choices/0/finish_reason").asText().equals("length");
        assertThat(message.get("stop_reason").asText()).isEqualTo(cut ? "max_tokens" : "end_turn");
        assertThat(message.at("/usage/input_tokens").asInt()).isEqualTo(chat.at("/usage/prompt_tokens").asInt());
        assertThat(message.at("/usage/output_tokens").asInt()).isEqualTo(chat.at("/usage/completion_tokens").asInt());

        JsonNode counted = server.postJson("/v1/messages/count_tokens", """
                {"model": "coil-demo", "system": "Answer briefly.", "messages": [
                  {"role": "user", "content": "Name a package manager."}, {"role": "assistant", "content": "apt"},
                  {"role": "user", "content": "Another?"}]}""");
        assertThat(counted.get("input_tokens").asInt()).isEqualTo(chat.at("/usage/prompt_tokens").asInt());
    }

    @Test
    void aStopSequenceEndsTheAnswerAndIsNamed() {
        JsonNode message = server.postJson("/v1/messages", """
                {"max_tokens": 64, "temperature": 0, "stop_sequences": [" "],
                 "messages": [{"role": "user", "content": "Name a package manager."}]}""");
        assertThat(message.get("stop_reason").asText()).isEqualTo("stop_sequence");
        assertThat(message.get("stop_sequence").asText()).isEqualTo(" ");
    }

    /** The stream's events in Anthropic's order; its text deltas make the whole answer's text. */
    @Test
    void theStreamIsAnthropicsEventsAndSpellsTheWholeAnswer() {
        String request = "\"max_tokens\": 16, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": "
                + "\"The Debian package manager\"}]";
        JsonNode whole = server.postJson("/v1/messages", "{" + request + "}");
        HttpResponse<String> streamed = server.post("/v1/messages", "{" + request + ", \"stream\": true}");
        assertThat(streamed.statusCode()).isEqualTo(200);
        List<JsonNode> events = events(streamed.body());
        List<String> types = events.stream().map(event -> event.get("type").asText()).toList();
        StringBuilder text = new StringBuilder();
        events.stream().filter(event -> event.get("type").asText().equals("content_block_delta"))
                .forEach(event -> text.append(event.at("/delta/text").asText()));
        int deltas = (int) types.stream().filter(type -> type.equals("content_block_delta")).count();
        List<String> expected = new ArrayList<>(List.of("message_start", "content_block_start"));
        expected.addAll(java.util.Collections.nCopies(deltas, "content_block_delta"));
        expected.addAll(List.of("content_block_stop", "message_delta", "message_stop"));
        assertThat(types).isEqualTo(expected);
        assertThat(text.toString()).isEqualTo(whole.at("/content/0/text").asText());
        assertThat(events.get(events.size() - 2).at("/delta/stop_reason").asText())
                .isEqualTo(whole.get("stop_reason").asText());
        assertThat(events.get(events.size() - 2).at("/usage/output_tokens").asInt())
                .isEqualTo(whole.at("/usage/output_tokens").asInt());
        assertThat(events.getFirst().at("/message/usage/input_tokens").asInt())
                .isEqualTo(whole.at("/usage/input_tokens").asInt());
    }

    static final String ALARM = """
            {"type": "object", "properties": {"hour": {"type": "integer", "minimum": 0, "maximum": 23},
             "label": {"type": "string", "maxLength": 12}}, "required": ["hour", "label"], "additionalProperties": false}""";

    /** A named tool: one tool_use block whose input holds to the schema, streamed as input_json deltas that spell it. */
    @Test
    void aNamedToolIsCalledWholeAndStreamed() throws Exception {
        String request = "\"max_tokens\": 400, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": "
                + "\"Wake me at seven.\"}], \"tools\": [{\"name\": \"set_alarm\", \"description\": \"Sets an alarm.\", "
                + "\"input_schema\": " + ALARM + "}], \"tool_choice\": {\"type\": \"tool\", \"name\": \"set_alarm\"}";
        JsonNode message = server.postJson("/v1/messages", "{" + request + "}");
        JsonNode use = message.at("/content/0");
        assertThat(use.get("type").asText()).as(message.toString()).isEqualTo("tool_use");
        assertThat(use.get("name").asText()).isEqualTo("set_alarm");
        assertThat(use.get("id").asText()).isNotEmpty();
        assertThat(message.get("stop_reason").asText()).as(message.toString()).isEqualTo("tool_use");
        assertThat(TestServer.schemaErrors(ALARM, use.get("input").toString())).as(use.toString()).isEmpty();
        StringBuilder partial = new StringBuilder();
        List<JsonNode> events = events(server.post("/v1/messages", "{" + request + ", \"stream\": true}").body());
        assertThat(events.get(1).at("/content_block/type").asText()).isEqualTo("tool_use");
        events.stream().filter(event -> event.at("/delta/type").asText().equals("input_json_delta"))
                .forEach(event -> partial.append(event.at("/delta/partial_json").asText()));
        assertThat(TestServer.JSON.readTree(partial.toString())).isEqualTo(use.get("input"));
    }

    /** tool_use and tool_result blocks are the chat conversation's assistant tool_calls and tool messages. */
    @Test
    void toolUseAndResultsAreTheChatConversation() {
        JsonNode message = server.postJson("/v1/messages", """
                {"max_tokens": 10, "temperature": 0, "messages": [{"role": "user", "content": "Wake me at seven."},
                  {"role": "assistant", "content": [{"type": "thinking", "thinking": "easy", "signature": ""},
                    {"type": "tool_use", "id": "toolu_1", "name": "set_alarm", "input": {"hour": 7}}]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]}]}""");
        JsonNode chat = server.postJson("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": "Wake me at seven."},
                  {"role": "assistant", "content": "", "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "set_alarm", "arguments": "{\\"hour\\":7}"}}]},
                  {"role": "tool", "tool_call_id": "toolu_1", "content": "done"}],
                 "max_tokens": 10, "temperature": 0}""");
        assertThat(message.at("/content/0/text").asText()).isEqualTo(chat.at("/choices/0/message/content").asText());
        assertThat(message.at("/usage/input_tokens").asInt()).isEqualTo(chat.at("/usage/prompt_tokens").asInt());
    }

    /** Errors are Anthropic's objects, their type Anthropic's name for the status. */
    @Test
    void errorsAreAnthropicsObjects() {
        assertAnthropicError("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "max_tokens is required");
        assertAnthropicError("{\"max_tokens\": 4, \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\", "
                + "\"source\": {}}]}]}", "blocks of type \"image\" are not supported");
        assertAnthropicError("{\"max_tokens\": 4, \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": "
                + "[{\"type\": \"web_search_20250305\", \"name\": \"web_search\"}]}", "only custom tools");
        assertAnthropicError("{\"max_tokens\": 4, \"messages\": []}", "messages must be a non-empty array");
        assertAnthropicError("{\"max_tokens\": -1, \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
                "max_tokens");
    }

    private static void assertAnthropicError(String body, String message) {
        HttpResponse<String> response = server.post("/v1/messages", body);
        assertThat(response.statusCode()).as(body).isEqualTo(400);
        JsonNode error = TestServer.parse(response.body());
        assertThat(error.get("type").asText()).isEqualTo("error");
        assertThat(error.at("/error/type").asText()).isEqualTo("invalid_request_error");
        assertThat(error.at("/error/message").asText()).as(body).contains(message);
    }

    /** The events of an Anthropic stream, each checked against its event line. */
    static List<JsonNode> events(String body) {
        List<JsonNode> events = new ArrayList<>();
        for (String block : body.split("\n\n")) {
            String[] lines = block.split("\n", 2);
            assertThat(lines[0]).startsWith("event: ");
            JsonNode event = TestServer.parse(lines[1].substring("data: ".length()));
            assertThat(event.get("type").asText()).isEqualTo(lines[0].substring("event: ".length()));
            events.add(event);
        }
        return events;
    }
}
