package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Chat with tools on the demo model: a named function's call and "required" calls come back as
 * OpenAI's tool_calls, their arguments valid for the function's parameters (networknt's validator),
 * streamed as they are whole; a conversation with earlier calls and their results renders; what Coil
 * cannot do ("auto", which needs a parser of the model's own call format) is a 400 naming the field.
 */
class ToolCallsTest {

    static final String WEATHER = """
            {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                              "unit": {"enum": ["celsius", "fahrenheit"]}},
             "required": ["city", "unit"]}""";
    static final String ADD = """
            {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
             "required": ["a", "b"]}""";
    static final String TOOLS = "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
            + "\"description\": \"Weather in a city\", \"parameters\": " + WEATHER + "}}, {\"type\": \"function\", "
            + "\"function\": {\"name\": \"add\", \"parameters\": " + ADD + "}}]";
    static final String ASK = "\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Paris?\"}], "
            + "\"temperature\": 0, \"max_tokens\": 400, ";

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
    void aNamedFunctionIsCalledWithValidArgumentsStreamedOrNot() throws Exception {
        String request = ASK + TOOLS + ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": "
                + "\"get_weather\"}}";
        JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
        assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
        assertThat(choice.at("/message/content").isNull()).isTrue();
        JsonNode calls = choice.at("/message/tool_calls");
        assertThat(calls).hasSize(1);
        JsonNode call = calls.get(0);
        assertThat(call.get("id").asText()).matches("chatcmpl-tool-[0-9a-f]{32}");
        assertThat(call.get("type").asText()).isEqualTo("function");
        assertThat(call.at("/function/name").asText()).isEqualTo("get_weather");
        String arguments = call.at("/function/arguments").asText();
        assertThat(TestServer.schemaErrors(WEATHER, arguments)).as(arguments).isEmpty();

        List<JsonNode> chunks = TestServer.events(server.post("/v1/chat/completions",
                "{" + request + ", \"stream\": true}").body());
        JsonNode opening = chunks.getFirst().at("/choices/0/delta/tool_calls/0");
        assertThat(opening.at("/function/name").asText()).isEqualTo("get_weather");
        assertThat(opening.get("id").asText()).matches("chatcmpl-tool-[0-9a-f]{32}");
        StringBuilder streamed = new StringBuilder();
        for (JsonNode chunk : chunks) {
            JsonNode delta = chunk.at("/choices/0/delta");
            assertThat(delta.has("content") && !delta.get("content").isNull()).as("no content: %s", chunk).isFalse();
            streamed.append(delta.at("/tool_calls/0/function/arguments").asText(""));
        }
        assertThat(streamed.toString()).isEqualTo(arguments);
        assertThat(chunks.getLast().at("/choices/0/finish_reason").asText()).isEqualTo("stop");
    }

    @Test
    void requiredMakesCallsOfTheGivenFunctions() throws Exception {
        String request = ASK + TOOLS + ", \"tool_choice\": \"required\", \"parallel_tool_calls\": false";
        JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
        JsonNode calls = choice.at("/message/tool_calls");
        assertThat(calls).as(choice.toString()).hasSize(1);
        String name = calls.get(0).at("/function/name").asText();
        assertThat(name).isIn("get_weather", "add");
        String arguments = calls.get(0).at("/function/arguments").asText();
        assertThat(TestServer.schemaErrors(name.equals("add") ? ADD : WEATHER, arguments)).as(arguments).isEmpty();

        List<JsonNode> chunks = TestServer.events(server.post("/v1/chat/completions",
                "{" + request + ", \"stream\": true}").body());
        JsonNode last = chunks.getLast().at("/choices/0/delta/tool_calls");
        assertThat(last).hasSize(1);
        assertThat(last.get(0).at("/function/name").asText()).isEqualTo(name);
        assertThat(last.get(0).at("/function/arguments").asText()).isEqualTo(arguments);
        assertThat(last.get(0).get("index").asInt()).isZero();
    }

    @Test
    void noneAnswersInTextAndEarlierCallsAndResultsRender() {
        String conversation = "\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Paris?\"}, "
                + "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_1\", "
                + "\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
                + "\"arguments\": \"{\\\"city\\\": \\\"Paris\\\", \\\"unit\\\": \\\"celsius\\\"}\"}}]}, "
                + "{\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"12 C, rain\"}], "
                + "\"temperature\": 0, \"max_tokens\": 8, ";
        JsonNode choice = server.postJson("/v1/chat/completions", "{" + conversation + TOOLS
                + ", \"tool_choice\": \"none\"}").at("/choices/0");
        assertThat(choice.at("/message/content").asText()).isNotEmpty();
        assertThat(choice.at("/message").has("tool_calls")).isFalse();
    }

    @Test
    void whatCannotBeDoneIsRefusedByName() {
        refused("/v1/chat/completions", ASK + TOOLS, "tool_choice", "needs a parser of the model's own");
        refused("/v1/chat/completions", ASK + TOOLS + ", \"tool_choice\": \"auto\"", "tool_choice",
                "\"auto\"");
        refused("/v1/chat/completions", ASK + TOOLS + ", \"tool_choice\": {\"type\": \"function\", "
                + "\"function\": {\"name\": \"gone\"}}", "tool_choice", "\"gone\", which tools does not define");
        refused("/v1/chat/completions", ASK + "\"tool_choice\": \"required\"", "tool_choice",
                "only allowed when tools are given");
        refused("/v1/chat/completions", ASK + "\"tools\": [{\"type\": \"function\", \"function\": "
                + "{\"name\": \"a b\"}}], \"tool_choice\": \"required\"", "tools", "letters, digits");
        refused("/v1/chat/completions", ASK + "\"tools\": [{\"type\": \"function\", \"function\": "
                + "{\"name\": \"f\", \"parameters\": {\"type\": \"number\", \"multipleOf\": 2}}}], "
                + "\"tool_choice\": \"required\"", "tools", "\"multipleOf\" is not supported");
        refused("/v1/chat/completions", ASK + TOOLS + ", \"tool_choice\": \"required\", "
                + "\"response_format\": {\"type\": \"json_object\"}", "tool_choice", "not both");
        refused("/v1/completions", "\"prompt\": \"x\", " + TOOLS, "tools", "not supported");
    }

    /** A request of {@code fields} is a 400 naming {@code param}. */
    private static void refused(String path, String fields, String param, String message) {
        server.assertRefused(path, "{" + fields + "}", param, message);
    }
}
