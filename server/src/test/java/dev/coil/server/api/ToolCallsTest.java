package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.helpers.ChatCompletionAccumulator;
import com.openai.models.FunctionDefinition;
import com.openai.models.FunctionParameters;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionFunctionTool;
import com.openai.models.chat.completions.ChatCompletionMessageFunctionToolCall;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Chat with tools on the demo model: a named function's call and "required" calls come back as
 * OpenAI's tool_calls, their arguments valid for the function's parameters (networknt's validator),
 * streamed as they are written; a conversation with earlier calls and their results renders. "auto",
 * on a server with --tool-call-parser hermes, reads the calls the model writes out of its answer,
 * streamed or not, through the official OpenAI client too; without a parser it is a 400 naming the field.
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

    /**
     * An answer in Hermes's format that the demo model is held to by a regex: a sentence, then two calls
     * whose arguments it picks.
     */
    static final String TWO_CALLS = "Checking\\.\n<tool_call>\n\\{\"name\": \"get_weather\", \"arguments\": "
            + "\\{\"city\": \"[A-Z][a-z]{2,8}\", \"unit\": \"(celsius|fahrenheit)\"\\}\\}\n</tool_call>\n"
            + "<tool_call>\n\\{\"name\": \"add\", \"arguments\": \\{\"a\": [1-9][0-9]?, \"b\": [1-9]\\}\\}\n</tool_call>";

    private static TestServer server;
    /** The same model served with --tool-call-parser hermes. */
    private static TestServer parsing;

    @BeforeAll
    static void start() {
        server = TestServer.start();
        parsing = TestServer.start(ServerOptions.defaults("127.0.0.1", 0).withToolCallParser(ToolCallFormat.HERMES),
                TestServer.ENGINE_OPTIONS);
    }

    @AfterAll
    static void stop() {
        server.close();
        parsing.close();
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
        assertThat(joinedCalls(chunks)).containsExactly(calls.get(0).get("function"));
        assertThat(chunks.stream().filter(chunk -> chunk.at("/choices/0/delta").has("tool_calls")).count())
                .as("the arguments come in pieces as they are written").isGreaterThan(2);
        for (JsonNode chunk : chunks) {
            assertThat(chunk.at("/choices/0/delta/content").isTextual()).as(chunk.toString()).isFalse();
        }
    }

    /**
     * Functions whose parameters refer to their own parts, as pydantic writes nested models (a
     * {@code $defs} entry and {@code "$ref": "#/$defs/..."}), both naming theirs Item with other
     * shapes: a "required" call's arguments are valid for its own function's schema, each reference
     * read within its own parameters, not the calls' list that holds them.
     */
    @Test
    void requiredReadsEachFunctionsReferencesWithinItsOwnParameters() throws Exception {
        String order = """
                {"$defs": {"Item": {"properties": {"sku": {"type": "string", "pattern": "[A-Z]{3}[0-9]{2}"},
                                                   "count": {"type": "integer", "minimum": 1, "maximum": 9}},
                                    "required": ["sku", "count"], "title": "Item", "type": "object"}},
                 "properties": {"items": {"items": {"$ref": "#/$defs/Item"}, "minItems": 1, "maxItems": 2,
                                          "title": "Items", "type": "array"}},
                 "required": ["items"], "title": "Order", "type": "object"}""";
        String label = """
                {"$defs": {"Item": {"enum": ["box", "crate"], "title": "Item", "type": "string"}},
                 "properties": {"item": {"$ref": "#/$defs/Item"}, "copies": {"type": "integer", "maximum": 3}},
                 "required": ["item", "copies"], "title": "Label", "type": "object"}""";
        String tools = "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"place_order\", "
                + "\"parameters\": " + order + "}}, {\"type\": \"function\", \"function\": {\"name\": \"print_label\", "
                + "\"parameters\": " + label + "}}]";
        for (int seed = 0; seed < 4; seed++) {
            String request = "{" + ASK.replace("\"temperature\": 0", "\"temperature\": 1.5, \"seed\": " + seed)
                    + tools + ", \"tool_choice\": \"required\"}";
            JsonNode choice = server.postJson("/v1/chat/completions", request).at("/choices/0");
            JsonNode calls = choice.at("/message/tool_calls");
            assertThat(calls).as(choice.toString()).isNotEmpty();
            for (JsonNode call : calls) {
                String name = call.at("/function/name").asText();
                assertThat(name).isIn("place_order", "print_label");
                String arguments = call.at("/function/arguments").asText();
                assertThat(TestServer.schemaErrors(name.equals("place_order") ? order : label, arguments))
                        .as("%s(%s)", name, arguments).isEmpty();
            }
        }
    }

    /**
     * A "required" answer cut by max_tokens: once a call has begun it comes back with the arguments
     * written so far (finish reason length), before that as content; streamed, the same.
     */
    @Test
    void requiredCutShortKeepsTheCallsBegun() {
        boolean sawPartialCall = false;
        boolean sawContent = false;
        for (int limit = 2; limit <= 80 && !(sawContent && sawPartialCall); limit += 3) {
            String request = ASK.replace("400", Integer.toString(limit)) + TOOLS + ", \"tool_choice\": \"required\"";
            JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
            assertThat(choice.get("finish_reason").asText()).isEqualTo("length");
            List<JsonNode> chunks = TestServer.events(server.post("/v1/chat/completions",
                    "{" + request + ", \"stream\": true}").body());
            List<JsonNode> wholeCalls = new ArrayList<>();
            choice.at("/message/tool_calls").forEach(call -> wholeCalls.add(call.get("function")));
            assertThat(joinedCalls(chunks)).as(choice.toString()).isEqualTo(wholeCalls);
            StringBuilder content = new StringBuilder();
            chunks.forEach(chunk -> content.append(chunk.at("/choices/0/delta/content").asText("")));
            if (wholeCalls.isEmpty()) {
                sawContent = true;
                assertThat(choice.at("/message/content").asText()).isNotEmpty().isEqualTo(content.toString());
            } else {
                sawPartialCall = true;
                assertThat(choice.at("/message/content").isNull()).isTrue();
                assertThat(content.toString()).isEmpty();
            }
        }
        assertThat(sawContent).as("a limit before the first call begins").isTrue();
        assertThat(sawPartialCall).as("a limit inside a call's arguments").isTrue();
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
        refused("/v1/chat/completions", ASK + TOOLS, "tool_choice", "--tool-call-parser");
        refused("/v1/chat/completions", ASK + TOOLS + ", \"tool_choice\": \"auto\"", "tool_choice",
                "\"auto\"");
        refused("/v1/chat/completions", ASK + TOOLS + ", \"tool_choice\": {\"type\": \"function\", "
                + "\"function\": {\"name\": \"gone\"}}", "tool_choice", "\"gone\", which tools does not define");
        refused("/v1/chat/completions", ASK + "\"tool_choice\": \"required\"", "tool_choice",
                "only allowed when tools are given");
        refused("/v1/chat/completions", ASK + "\"tools\": [{\"type\": \"function\", \"function\": "
                + "{\"name\": \"a b\"}}], \"tool_choice\": \"required\"", "tools", "letters, digits");
        refused("/v1/chat/completions", ASK + "\"tools\": [{\"type\": \"function\", \"function\": "
                + "{\"name\": \"f\", \"parameters\": {\"type\": \"object\", \"dependentRequired\": {}}}}], "
                + "\"tool_choice\": \"required\"", "tools", "\"dependentRequired\" is not supported");
        refused("/v1/chat/completions", ASK + TOOLS + ", \"tool_choice\": \"required\", "
                + "\"response_format\": {\"type\": \"json_object\"}", "tool_choice", "not both");
        refused("/v1/completions", "\"prompt\": \"x\", " + TOOLS, "tools", "not supported");
    }

    @Test
    void autoReadsTheCallsTheModelWritesStreamedOrNot() {
        ObjectNode request = (ObjectNode) TestServer.parse("{" + ASK + TOOLS + "}");
        request.putObject("structured_outputs").put("regex", TWO_CALLS);
        JsonNode choice = parsing.postJson("/v1/chat/completions", request.toString()).at("/choices/0");
        assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("tool_calls");
        assertThat(choice.at("/message/content").asText()).isEqualTo("Checking.");
        JsonNode calls = choice.at("/message/tool_calls");
        assertThat(calls).hasSize(2);
        assertThat(calls.get(0).get("id").asText()).matches("chatcmpl-tool-[0-9a-f]{32}");
        assertThat(calls.get(0).get("type").asText()).isEqualTo("function");
        assertThat(calls.get(0).has("index")).isFalse();
        assertThat(calls.get(0).at("/function/name").asText()).isEqualTo("get_weather");
        assertThat(calls.get(1).at("/function/name").asText()).isEqualTo("add");
        String weather = calls.get(0).at("/function/arguments").asText();
        String sum = calls.get(1).at("/function/arguments").asText();
        assertThat(TestServer.schemaErrors(WEATHER, weather)).as(weather).isEmpty();
        assertThat(TestServer.schemaErrors(ADD, sum)).as(sum).isEmpty();

        // tool_choice left out is "auto"; given, the same.
        request.put("stream", true);
        for (JsonNode streamRequest : List.of(request, request.deepCopy().put("tool_choice", "auto"))) {
            List<JsonNode> chunks = TestServer.events(parsing.post("/v1/chat/completions", streamRequest.toString())
                    .body());
            StringBuilder content = new StringBuilder();
            int pieces = 0;
            for (JsonNode chunk : chunks) {
                JsonNode delta = chunk.at("/choices/0/delta");
                content.append(delta.path("content").asText(""));
                pieces += delta.path("tool_calls").size();
            }
            assertThat(content.toString()).isEqualTo("Checking.");
            List<JsonNode> streamedCalls = joinedCalls(chunks);
            assertThat(streamedCalls).hasSize(2);
            for (int i = 0; i < 2; i++) {
                assertThat(streamedCalls.get(i)).isEqualTo(calls.get(i).get("function"));
            }
            assertThat(pieces).as("the arguments come in pieces as they are written").isGreaterThan(4);
            assertThat(chunks.getLast().at("/choices/0/finish_reason").asText()).isEqualTo("tool_calls");
        }
    }

    /**
     * With --tool-call-parser qwen3_coder (Qwen3-Coder's and Nemotron 3 Nano's tags), an answer the demo
     * model is held to by a regex: its calls come back with arguments typed by each tool's schema (the
     * numbers of add as numbers), the same streamed as whole.
     */
    @Test
    void autoReadsTaggedCallsTypedByTheirSchemas() {
        String tagged = "Checking\\.\n<tool_call>\n<function=get_weather>\n<parameter=city>\n[A-Z][a-z]{2,8}\n"
                + "</parameter>\n<parameter=unit>\n(celsius|fahrenheit)\n</parameter>\n</function>\n</tool_call>\n"
                + "<tool_call>\n<function=add>\n<parameter=a>\n[1-9][0-9]?\n</parameter>\n<parameter=b>\n[1-9]\\.5\n"
                + "</parameter>\n</function>\n</tool_call>";
        try (TestServer xml = TestServer.start(ServerOptions.defaults("127.0.0.1", 0)
                .withToolCallParser(ToolCallFormat.QWEN3_CODER), TestServer.ENGINE_OPTIONS)) {
            ObjectNode request = (ObjectNode) TestServer.parse("{" + ASK + TOOLS + "}");
            request.putObject("structured_outputs").put("regex", tagged);
            JsonNode choice = xml.postJson("/v1/chat/completions", request.toString()).at("/choices/0");
            assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("tool_calls");
            assertThat(choice.at("/message/content").asText()).isEqualTo("Checking.");
            JsonNode calls = choice.at("/message/tool_calls");
            assertThat(calls).hasSize(2);
            String weather = calls.get(0).at("/function/arguments").asText();
            String sum = calls.get(1).at("/function/arguments").asText();
            assertThat(calls.get(0).at("/function/name").asText()).isEqualTo("get_weather");
            assertThat(TestServer.schemaErrors(WEATHER, weather)).as(weather).isEmpty();
            assertThat(TestServer.schemaErrors(ADD, sum)).as(sum).isEmpty();
            assertThat(TestServer.parse(sum).get("b").isNumber()).as(sum).isTrue();

            List<JsonNode> chunks = TestServer.events(xml.post("/v1/chat/completions",
                    request.put("stream", true).toString()).body());
            List<JsonNode> streamed = joinedCalls(chunks);
            assertThat(streamed).hasSize(2);
            for (int i = 0; i < 2; i++) {
                assertThat(streamed.get(i)).isEqualTo(calls.get(i).get("function"));
            }
            assertThat(chunks.getLast().at("/choices/0/finish_reason").asText()).isEqualTo("tool_calls");
        }
    }

    /** A call whose end tag never came (the answer ended first) is read when the answer ends, streamed too. */
    @Test
    void autoReadsACallLeftOpenAtTheEnd() {
        ObjectNode request = (ObjectNode) TestServer.parse("{" + ASK + TOOLS + "}");
        request.putObject("structured_outputs").put("regex", "<tool_call>\n\\{\"name\": \"add\", \"arguments\": "
                + "\\{\"a\": [1-9], \"b\": [1-9]\\}\\}\n");
        JsonNode choice = parsing.postJson("/v1/chat/completions", request.toString()).at("/choices/0");
        assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("tool_calls");
        assertThat(choice.at("/message/content").isNull()).isTrue();
        JsonNode call = choice.at("/message/tool_calls/0/function");
        assertThat(call.get("name").asText()).isEqualTo("add");

        List<JsonNode> chunks = TestServer.events(parsing.post("/v1/chat/completions",
                request.put("stream", true).toString()).body());
        JsonNode last = chunks.getLast().at("/choices/0");
        assertThat(joinedCalls(chunks)).containsExactly(call);
        assertThat(last.get("finish_reason").asText()).isEqualTo("tool_calls");
        for (JsonNode chunk : chunks) {
            assertThat(chunk.at("/choices/0/delta/content").asText("")).as(chunk.toString()).isEmpty();
        }
    }

    @Test
    void autoLosesNothingOfAnAnswerWithoutCalls() {
        String request = "{" + ASK.replace("400", "24") + TOOLS + ", \"skip_special_tokens\": false";
        JsonNode none = parsing.postJson("/v1/chat/completions", request + ", \"tool_choice\": \"none\"}")
                .at("/choices/0");
        JsonNode auto = parsing.postJson("/v1/chat/completions", request + ", \"tool_choice\": \"auto\"}")
                .at("/choices/0");
        assertThat(none.at("/message/content").asText()).isNotEmpty().doesNotContain("<tool_call>");
        assertThat(auto.get("message")).isEqualTo(none.get("message"));
        assertThat(auto.get("finish_reason")).isEqualTo(none.get("finish_reason"));

        StringBuilder streamed = new StringBuilder();
        for (JsonNode chunk : TestServer.events(parsing.post("/v1/chat/completions",
                request + ", \"stream\": true}").body())) {
            assertThat(chunk.at("/choices/0/delta").has("tool_calls")).isFalse();
            streamed.append(chunk.at("/choices/0/delta/content").asText(""));
        }
        assertThat(streamed.toString()).isEqualTo(none.at("/message/content").asText());
    }

    /** The official client, as an agent framework uses it: tools given, no tool_choice, calls read back. */
    @Test
    void theClientReadsAutoCallsWholeAndStreamed() {
        OpenAIClient client = OpenAIOkHttpClient.builder().baseUrl(parsing.url("/v1")).apiKey("unused")
                .timeout(Duration.ofSeconds(60)).maxRetries(0).build();
        try {
            var params = ChatCompletionCreateParams.builder().model("coil-demo").addUserMessage("Weather in Paris?")
                    .maxCompletionTokens(400).temperature(0.0)
                    .addTool(function("get_weather", WEATHER)).addTool(function("add", ADD))
                    .putAdditionalBodyProperty("structured_outputs", JsonValue.from(Map.of("regex", TWO_CALLS)))
                    .build();
            ChatCompletion.Choice whole = client.chat().completions().create(params).choices().getFirst();
            assertThat(whole.finishReason()).isEqualTo(ChatCompletion.Choice.FinishReason.TOOL_CALLS);
            assertThat(whole.message().content()).contains("Checking.");
            List<ChatCompletionMessageFunctionToolCall.Function> calls = whole.message().toolCalls().orElseThrow()
                    .stream().map(call -> call.asFunction().function()).toList();
            assertThat(calls).extracting(ChatCompletionMessageFunctionToolCall.Function::name)
                    .containsExactly("get_weather", "add");

            ChatCompletionAccumulator accumulator = ChatCompletionAccumulator.create();
            try (StreamResponse<ChatCompletionChunk> stream = client.chat().completions().createStreaming(params)) {
                stream.stream().forEach(accumulator::accumulate);
            }
            ChatCompletion.Choice streamed = accumulator.chatCompletion().choices().getFirst();
            assertThat(streamed.finishReason()).isEqualTo(ChatCompletion.Choice.FinishReason.TOOL_CALLS);
            assertThat(streamed.message().content()).isEqualTo(whole.message().content());
            assertThat(streamed.message().toolCalls().orElseThrow().stream()
                    .map(call -> call.asFunction().function()).toList()).isEqualTo(calls);
        } finally {
            client.close();
        }
    }

    private static ChatCompletionFunctionTool function(String name, String schema) {
        var parameters = FunctionParameters.builder();
        TestServer.parse(schema).properties().forEach(field ->
                parameters.putAdditionalProperty(field.getKey(), JsonValue.fromJsonNode(field.getValue())));
        return ChatCompletionFunctionTool.builder().function(FunctionDefinition.builder().name(name)
                .parameters(parameters.build()).build()).build();
    }

    /** The calls a stream's chunks make, joined as OpenAI's clients join them (StreamedToolCalls). */
    private static List<JsonNode> joinedCalls(List<JsonNode> chunks) {
        List<JsonNode> calls = new ArrayList<>();
        for (JsonNode chunk : chunks) {
            StreamedToolCalls.join(chunk.at("/choices/0/delta"), calls);
        }
        return calls;
    }

    /** A request of {@code fields} is a 400 naming {@code param}. */
    private static void refused(String path, String fields, String param, String message) {
        server.assertRefused(path, "{" + fields + "}", param, message);
    }
}
