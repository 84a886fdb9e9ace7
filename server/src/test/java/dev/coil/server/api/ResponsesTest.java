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
 * /v1/responses on the demo model: the answer is the chat answer the request stands for (the same
 * text, greedy), its stream the typed events OpenAI sends, in order, whose deltas make the whole
 * answer's text; text.format holds it to a schema; what the server does not do is a 400 naming it.
 */
class ResponsesTest {

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
        JsonNode response = server.postJson("/v1/responses", """
                {"model": "coil-demo", "instructions": "Answer briefly.", "input": [
                  {"role": "user", "content": "Name a package manager."},
                  {"role": "assistant", "content": [{"type": "output_text", "text": "apt"}]},
                  {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Another?"}]}],
                 "max_output_tokens": 12, "temperature": 0, "metadata": {"k": "v"}}""");
        JsonNode chat = server.postJson("/v1/chat/completions", """
                {"messages": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "Name a package manager."}, {"role": "assistant", "content": "apt"},
                  {"role": "system", "content": "Another?"}], "max_tokens": 12, "temperature": 0}""");

        assertThat(response.get("object").asText()).isEqualTo("response");
        assertThat(response.get("id").asText()).startsWith("resp_");
        boolean cut = chat.at("/choices/0/finish_reason").asText().equals("length");
        assertThat(response.get("status").asText()).isEqualTo(cut ? "incomplete" : "completed");
        assertThat(response.at("/incomplete_details/reason").asText(null)).isEqualTo(cut ? "max_output_tokens" : null);
        assertThat(response.get("output")).hasSize(1);
        JsonNode message = response.at("/output/0");
        assertThat(message.get("type").asText()).isEqualTo("message");
        assertThat(message.get("role").asText()).isEqualTo("assistant");
        assertThat(message.at("/content/0/type").asText()).isEqualTo("output_text");
        assertThat(message.at("/content/0/text").asText()).isEqualTo(chat.at("/choices/0/message/content").asText())
                .isNotEmpty();
        assertThat(response.at("/usage/input_tokens").asInt()).isEqualTo(chat.at("/usage/prompt_tokens").asInt());
        assertThat(response.at("/usage/output_tokens").asInt()).isEqualTo(chat.at("/usage/completion_tokens").asInt());
        assertThat(response.at("/usage/total_tokens").asInt()).isEqualTo(chat.at("/usage/total_tokens").asInt());
        assertThat(response.get("instructions").asText()).isEqualTo("Answer briefly.");
        assertThat(response.get("max_output_tokens").asInt()).isEqualTo(12);
        assertThat(response.at("/metadata/k").asText()).isEqualTo("v");
        assertThat(response.get("temperature").asDouble()).isZero();
        assertThat(response.at("/text/format/type").asText()).isEqualTo("text");
        assertThat(response.get("store").asBoolean()).isTrue();
        assertThat(response.has("timings")).isTrue();
    }

    /** The stream's events in OpenAI's order, numbered; its deltas make the whole answer's text. */
    @Test
    void theStreamIsOpenAisEventsAndSpellsTheWholeAnswer() {
        String request = "\"input\": \"The Debian package manager\", \"max_output_tokens\": 16, \"temperature\": 0";
        JsonNode whole = server.postJson("/v1/responses", "{" + request + "}");
        HttpResponse<String> streamed = server.post("/v1/responses", "{" + request + ", \"stream\": true}");
        assertThat(streamed.statusCode()).isEqualTo(200);

        List<String> types = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        List<JsonNode> events = events(streamed.body());
        for (JsonNode event : events) {
            types.add(event.get("type").asText());
            if (event.get("type").asText().equals("response.output_text.delta")) {
                text.append(event.get("delta").asText());
            }
        }
        JsonNode last = events.getLast();
        int deltas = (int) types.stream().filter(type -> type.equals("response.output_text.delta")).count();
        List<String> expected = new ArrayList<>(List.of("response.created", "response.in_progress",
                "response.output_item.added", "response.content_part.added"));
        expected.addAll(java.util.Collections.nCopies(deltas, "response.output_text.delta"));
        expected.addAll(List.of("response.output_text.done", "response.content_part.done",
                "response.output_item.done", "response.incomplete"));
        assertThat(types).isEqualTo(expected);
        assertThat(deltas).isPositive();
        String wholeText = whole.at("/output/0/content/0/text").asText();
        assertThat(text.toString()).isEqualTo(wholeText);
        assertThat(last.at("/response/output/0/content/0/text").asText()).isEqualTo(wholeText);
        assertThat(last.at("/response/usage/output_tokens").asInt()).isEqualTo(16);
        assertThat(last.at("/response/status").asText()).isEqualTo("incomplete");
    }

    static final String WORD = """
            {"type": "object", "properties": {"word": {"type": "string", "maxLength": 8}}, "required": ["word"],
             "additionalProperties": false}""";

    @Test
    void textFormatHoldsTheAnswerToTheSchema() {
        List<String> whole = new ArrayList<>();
        for (int seed = 0; seed < 3; seed++) {
            JsonNode response = server.postJson("/v1/responses", "{\"input\": \"A word as JSON.\", \"max_output_tokens\": "
                    + "48, \"temperature\": 0.9, \"seed\": " + seed + ", \"text\": {\"format\": {\"type\": \"json_schema\", "
                    + "\"name\": \"word\", \"strict\": true, \"schema\": " + WORD + "}}}");
            String text = response.at("/output/0/content/0/text").asText();
            assertThat(text).startsWith("{");
            assertThat(response.at("/text/format/name").asText()).isEqualTo("word");
            if (response.get("status").asText().equals("completed")) {
                assertThat(TestServer.schemaErrors(WORD, text)).as(text).isEmpty();
                whole.add(text);
            }
        }
        System.out.println("[responses] json_schema answers: " + whole);
        assertThat(whole).as("answers that ended by themselves").isNotEmpty();
    }

    static final String ALARM = """
            {"type": "object", "properties": {"hour": {"type": "integer", "minimum": 0, "maximum": 23},
             "label": {"type": "string", "maxLength": 12}}, "required": ["hour", "label"], "additionalProperties": false}""";

    /**
     * A named function: the answer is one function_call item whose arguments hold to its parameters,
     * and its stream opens the item, sends the arguments as deltas that spell them, and closes it.
     */
    @Test
    void aNamedFunctionIsCalledWholeAndStreamed() {
        String request = "\"input\": \"Wake me at seven.\", \"max_output_tokens\": 120, \"temperature\": 0, "
                + "\"tools\": [{\"type\": \"function\", \"name\": \"set_alarm\", \"description\": \"Sets an alarm.\", "
                + "\"parameters\": " + ALARM + ", \"strict\": true}], "
                + "\"tool_choice\": {\"type\": \"function\", \"name\": \"set_alarm\"}";
        JsonNode response = server.postJson("/v1/responses", "{" + request + "}");
        assertThat(response.get("output")).as(response.toString()).hasSize(1);
        JsonNode call = response.at("/output/0");
        assertThat(call.get("type").asText()).isEqualTo("function_call");
        assertThat(call.get("name").asText()).isEqualTo("set_alarm");
        assertThat(call.get("call_id").asText()).isNotEmpty();
        String arguments = call.get("arguments").asText();
        if (response.get("status").asText().equals("completed")) {
            assertThat(TestServer.schemaErrors(ALARM, arguments)).as(arguments).isEmpty();
        }
        assertThat(response.at("/tool_choice/name").asText()).isEqualTo("set_alarm");
        assertThat(response.at("/tools/0/name").asText()).isEqualTo("set_alarm");

        List<JsonNode> events = events(server.post("/v1/responses", "{" + request + ", \"stream\": true}").body());
        StringBuilder streamed = new StringBuilder();
        List<String> types = new ArrayList<>();
        for (JsonNode event : events) {
            String type = event.get("type").asText();
            types.add(type);
            if (type.equals("response.function_call_arguments.delta")) {
                streamed.append(event.get("delta").asText());
                assertThat(event.get("item_id").asText()).isEqualTo(events.get(2).at("/item/id").asText());
            }
        }
        assertThat(types.subList(0, 3)).containsExactly("response.created", "response.in_progress",
                "response.output_item.added");
        assertThat(events.get(2).at("/item/type").asText()).isEqualTo("function_call");
        assertThat(streamed.toString()).isEqualTo(arguments);
        JsonNode done = events.get(types.indexOf("response.function_call_arguments.done"));
        assertThat(done.get("arguments").asText()).isEqualTo(arguments);
        assertThat(events.getLast().at("/response/output/0/arguments").asText()).isEqualTo(arguments);
        assertThat(types.getLast()).isIn("response.completed", "response.incomplete");
    }

    /** Calls and their outputs given back in the input are the chat conversation of assistant tool_calls and tool messages. */
    @Test
    void callsAndTheirOutputsInTheInputAreTheChatConversation() {
        JsonNode response = server.postJson("/v1/responses", """
                {"input": [{"role": "user", "content": "Wake me at seven."},
                  {"type": "function_call", "call_id": "call_1", "name": "set_alarm", "arguments": "{\\"hour\\": 7}"},
                  {"type": "reasoning", "id": "rs_1", "summary": []},
                  {"type": "function_call_output", "call_id": "call_1", "output": "done"}],
                 "max_output_tokens": 10, "temperature": 0}""");
        JsonNode chat = server.postJson("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": "Wake me at seven."},
                  {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "set_alarm", "arguments": "{\\"hour\\": 7}"}}]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "done"}],
                 "max_tokens": 10, "temperature": 0}""");
        assertThat(response.at("/output/0/content/0/text").asText())
                .isEqualTo(chat.at("/choices/0/message/content").asText());
        assertThat(response.at("/usage/input_tokens").asInt()).isEqualTo(chat.at("/usage/prompt_tokens").asInt());
    }

    /**
     * include message.output_text.logprobs: the message's text carries its tokens' logprobs, the same
     * as chat gives for the same conversation (greedy, cut by its limit: every token wrote text), whose
     * tokens spell the text; streamed, the deltas carry them in pieces that make the whole's.
     */
    @Test
    void logprobsAreChatsAndTheStreamCarriesThemInPieces() {
        String request = "\"input\": \"The Debian package manager\", \"max_output_tokens\": 12, \"temperature\": 0, "
                + "\"include\": [\"message.output_text.logprobs\", \"reasoning.encrypted_content\"], \"top_logprobs\": 2";
        JsonNode whole = server.postJson("/v1/responses", "{" + request + "}");
        JsonNode chat = server.postJson("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": "The Debian package manager"}], "max_tokens": 12,
                 "temperature": 0, "logprobs": true, "top_logprobs": 2}""");
        JsonNode logprobs = whole.at("/output/0/content/0/logprobs");
        assertThat(logprobs).hasSize(12);
        assertThat(logprobs).isEqualTo(chat.at("/choices/0/logprobs/content"));
        StringBuilder spelled = new StringBuilder();
        logprobs.forEach(entry -> {
            spelled.append(entry.get("token").asText());
            assertThat(entry.get("top_logprobs")).hasSize(2);
            assertThat(entry.get("logprob").asDouble()).isLessThanOrEqualTo(0);
        });
        assertThat(spelled.toString()).isEqualTo(whole.at("/output/0/content/0/text").asText());

        List<JsonNode> events = events(server.post("/v1/responses", "{" + request + ", \"stream\": true}").body());
        List<JsonNode> streamed = new ArrayList<>();
        for (JsonNode event : events) {
            switch (event.get("type").asText()) {
                case "response.output_text.delta" -> event.get("logprobs").forEach(streamed::add);
                case "response.output_text.done" -> assertThat(event.get("logprobs")).isEqualTo(logprobs);
                case "response.content_part.done" -> assertThat(event.at("/part/logprobs")).isEqualTo(logprobs);
                default -> { }
            }
        }
        assertThat((JsonNode) TestServer.JSON.valueToTree(streamed)).isEqualTo(logprobs);
        assertThat(events.getLast().at("/response/output/0/content/0/logprobs")).isEqualTo(logprobs);

        JsonNode without = server.postJson("/v1/responses", """
                {"input": "The Debian package manager", "max_output_tokens": 4, "temperature": 0, "top_logprobs": 2}""");
        assertThat(without.at("/output/0/content/0/logprobs")).isEmpty();
    }

    /** The typed events of a Responses stream, each checked against its event line and numbered in order. */
    static List<JsonNode> events(String body) {
        List<JsonNode> events = new ArrayList<>();
        for (String block : body.split("\n\n")) {
            String[] lines = block.split("\n", 2);
            assertThat(lines[0]).startsWith("event: ");
            JsonNode event = TestServer.parse(lines[1].substring("data: ".length()));
            assertThat(event.get("type").asText()).isEqualTo(lines[0].substring("event: ".length()));
            assertThat(event.get("sequence_number").asInt()).isEqualTo(events.size());
            events.add(event);
        }
        return events;
    }

    /**
     * tool_choice "auto" is the Responses API's default, and clients send it with no tools too: the answer
     * is the one without it; "required" without tools is still refused.
     */
    @Test
    void toolChoiceAutoWithoutToolsIsThePlainAnswer() {
        String request = "{\"input\": \"Name a package manager.\", \"max_output_tokens\": 8, \"temperature\": 0";
        String plain = server.postJson("/v1/responses", request + "}").at("/output/0/content/0/text").asText();
        for (String tools : new String[] {"", ", \"tools\": []"}) {
            JsonNode response = server.postJson("/v1/responses", request + ", \"tool_choice\": \"auto\"" + tools + "}");
            assertThat(response.at("/output/0/content/0/text").asText()).isEqualTo(plain).isNotEmpty();
        }
        refused("\"input\": \"x\", \"tool_choice\": \"required\"", "tool_choice", "only allowed when tools are given");
    }

    @Test
    void whatIsNotServedIsRefusedByName() {
        refused("\"input\": \"x\", \"tools\": [{\"type\": \"web_search\"}]", "tools",
                "tools[0]: tools of type \"web_search\" are not supported");
        refused("\"input\": \"x\", \"tool_choice\": {\"type\": \"file_search\"}", "tool_choice", "tool_choice must be");
        refused("\"input\": \"x\", \"previous_response_id\": \"resp_1\"", "previous_response_id",
                "Previous response with id 'resp_1' not found.");
        refused("\"input\": \"x\", \"include\": [\"message.logprobs\"]", "include",
                "include[0]: \"message.logprobs\" is not one of \"message.output_text.logprobs\"");
        refused("\"input\": \"x\", \"include\": \"message.output_text.logprobs\"", "include", "must be an array");
        refused("\"input\": \"x\", \"top_logprobs\": 21", "top_logprobs", "top_logprobs");
        refused("\"input\": [{\"type\": \"web_search_call\", \"id\": \"w\"}]", "input",
                "input[0]: items of type \"web_search_call\" are not supported");
        refused("\"input\": [{\"type\": \"function_call\", \"name\": \"f\", \"arguments\": \"{}\"}]", "input",
                "input[0].call_id must be a string");
        refused("\"input\": [{\"role\": \"user\", \"content\": [{\"type\": \"input_image\", \"image_url\": \"u\"}]}]",
                "input", "parts of type \"input_image\" are not supported");
        refused("\"max_output_tokens\": 4", "input", "input is required");
        refused("\"input\": \"x\", \"messages\": []", "messages", "give input");
        refused("\"input\": \"x\", \"max_output_tokens\": -1", "max_output_tokens", "max_output_tokens");
        refused("\"input\": \"x\", \"text\": {\"format\": {\"type\": \"json_schema\", \"name\": \"a\", \"schema\": "
                + "{\"type\": \"string\", \"pattern\": \"(?=a)\"}}}", "text", "lookaround is not supported");
    }

    private static void refused(String fields, String param, String message) {
        server.assertRefused("/v1/responses", "{" + fields + "}", param, message);
    }
}
