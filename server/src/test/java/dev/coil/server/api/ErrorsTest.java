package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every error as OpenAI shapes it, {"error": {"message", "type", "param", "code"}}, with its status:
 * 400 naming the parameter, 401, 404, 405, 413, 429; and bodies that are not even valid JSON get a
 * 400, never a 500.
 */
class ErrorsTest {

    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    /** Asserts an OpenAI error object with this status and param; returns its message. */
    private static String assertError(HttpResponse<String> response, int status, String param) {
        assertThat(response.statusCode()).as(response.body()).isEqualTo(status);
        assertThat(response.headers().firstValue("Content-Type").orElseThrow()).startsWith("application/json");
        JsonNode error = TestServer.parse(response.body()).get("error");
        assertThat(error).as(response.body()).isNotNull();
        assertThat(error.get("message").asText()).isNotBlank();
        assertThat(error.get("type").asText()).isNotBlank();
        assertThat(error.has("code")).isTrue();
        if (param == null) {
            assertThat(error.get("param").isNull()).isTrue();
        } else {
            assertThat(error.get("param").asText()).isEqualTo(param);
        }
        return error.get("message").asText();
    }

    static Stream<Arguments> invalidParameters() {
        String longPrompt = IntStream.range(0, 8200).mapToObj(i -> "5").reduce((a, b) -> a + "," + b).orElseThrow();
        return Stream.of(
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": -1}", "max_tokens"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": \"5\"}", "max_tokens"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2.5}", "max_tokens"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 1e30}", "max_tokens"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 8192}", "max_tokens"),
                Arguments.of("/v1/completions", "{\"prompt\": [" + longPrompt + "], \"max_tokens\": 1}", "prompt"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"temperature\": -0.5}", "temperature"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"temperature\": 1e400}", "temperature"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"temperature\": null, \"top_p\": 1.5}", "top_p"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"top_k\": -2}", "top_k"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"min_p\": 2}", "min_p"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"presence_penalty\": -3}", "presence_penalty"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"frequency_penalty\": true}", "frequency_penalty"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"repetition_penalty\": 0}", "repetition_penalty"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"n\": 0}", "n"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"n\": 1000}", "n"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"seed\": 1.5}", "seed"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"seed\": 18446744073709551615}", "seed"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"stop_token_ids\": [99999]}", "stop_token_ids"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"stop_token_ids\": [-1]}", "stop_token_ids"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"stop_token_ids\": 5}", "stop_token_ids"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"allowed_token_ids\": []}", "allowed_token_ids"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"allowed_token_ids\": [99999]}",
                        "allowed_token_ids"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"allowed_token_ids\": [\"a\"]}", "allowed_token_ids"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"bad_words\": [\" \"]}", "bad_words"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"bad_words\": [5]}", "bad_words"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"logprobs\": 21}", "logprobs"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"logprobs\": -1}", "logprobs"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"stop\": 5}", "stop"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"stop\": [\"\"]}", "stop"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"stream\": \"yes\"}", "stream"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"stream_options\": {\"include_usage\": true}}",
                        "stream_options"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"echo\": 1}", "echo"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"user\": 7}", "user"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"min_tokens\": -1}", "min_tokens"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"truncate_prompt_tokens\": 0}",
                        "truncate_prompt_tokens"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"truncate_prompt_tokens\": -2}", "truncate_prompt_tokens"),
                // The demo server has no --reasoning-parser to name the block a budget ends.
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"thinking_token_budget\": 8}", "thinking_token_budget"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"thinking_token_budget\": 8}",
                        "thinking_token_budget"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 4, \"min_tokens\": 5}", "min_tokens"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"max_completion_tokens\": 2, \"min_tokens\": 3}", "min_tokens"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"logit_bias\": {\"5\": 100.5}}", "logit_bias"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"logit_bias\": {\"5\": \"up\"}}", "logit_bias"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"logit_bias\": {\"five\": 1}}", "logit_bias"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"logit_bias\": {\"8192\": 1}}", "logit_bias"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"logit_bias\": {\"-1\": 1}}", "logit_bias"),
                Arguments.of("/v1/completions", "{\"prompt\": \"x\", \"logit_bias\": [5]}", "logit_bias"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"logit_bias\": {\"3\": -101}}", "logit_bias"),
                Arguments.of("/v1/completions", "{}", "prompt"),
                Arguments.of("/v1/completions", "{\"prompt\": []}", "prompt"),
                Arguments.of("/v1/completions", "{\"prompt\": \"\"}", "prompt"),
                Arguments.of("/v1/completions", "{\"prompt\": [-1]}", "prompt"),
                Arguments.of("/v1/completions", "{\"prompt\": [8192]}", "prompt"),
                Arguments.of("/v1/completions", "{\"prompt\": {\"text\": \"x\"}}", "prompt"),
                Arguments.of("/v1/completions", "{\"prompt\": [\"a\", 5]}", "prompt"),
                Arguments.of("/v1/chat/completions", "{\"messages\": []}", "messages"),
                Arguments.of("/v1/chat/completions", "{\"messages\": \"hi\"}", "messages"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"content\": \"hi\"}]}", "messages[0].role"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}",
                        "messages[0].content"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": "
                        + "[{\"type\": \"image_url\", \"image_url\": {\"url\": \"x\"}}]}]}", "messages[0].content"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"top_logprobs\": 2}", "top_logprobs"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"max_completion_tokens\": -5}", "max_completion_tokens"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"stop_token_ids\": [8192]}", "stop_token_ids"),
                Arguments.of("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        + "\"tools\": [{\"type\": \"function\"}]}", "tools"),
                Arguments.of("/tokenize", "{\"prompt\": 5}", "prompt"),
                Arguments.of("/detokenize", "{\"tokens\": [\"a\"]}", "tokens"),
                Arguments.of("/detokenize", "{\"tokens\": [99999]}", "tokens"));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("invalidParameters")
    void invalidParameterIsA400NamingIt(String path, String body, String param) {
        String message = assertError(server.post(path, body), 400, param);
        assertThat(message).contains(param.replaceAll("\\[.*", ""));
    }

    static Stream<Arguments> malformedBodies() {
        return Stream.of(
                Arguments.of("truncated", "{\"prompt\": \"x\"".getBytes(StandardCharsets.UTF_8)),
                Arguments.of("trailing garbage", "{\"prompt\": \"x\"} x".getBytes(StandardCharsets.UTF_8)),
                Arguments.of("NaN literal", "{\"prompt\": \"x\", \"temperature\": NaN}".getBytes(StandardCharsets.UTF_8)),
                Arguments.of("Infinity literal", "{\"prompt\": \"x\", \"top_p\": -Infinity}".getBytes(StandardCharsets.UTF_8)),
                Arguments.of("single quotes", "{'prompt': 'x'}".getBytes(StandardCharsets.UTF_8)),
                Arguments.of("invalid UTF-8", new byte[] {'{', '"', 'p', 'r', 'o', 'm', 'p', 't', '"', ':', '"',
                    (byte) 0xff, (byte) 0xc3, '"', '}'}),
                Arguments.of("lone surrogate escape", "{\"prompt\": \"\\ud800\"}".getBytes(StandardCharsets.UTF_8)),
                Arguments.of("empty", new byte[0]),
                Arguments.of("array", "[1, 2]".getBytes(StandardCharsets.UTF_8)),
                Arguments.of("string", "\"hello\"".getBytes(StandardCharsets.UTF_8)),
                Arguments.of("null", "null".getBytes(StandardCharsets.UTF_8)),
                Arguments.of("deep nesting", ("{\"prompt\": " + "[".repeat(5000) + "]".repeat(5000) + "}")
                        .getBytes(StandardCharsets.UTF_8)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("malformedBodies")
    void malformedBodyIsA400NeverA500(String name, byte[] body) {
        for (String path : new String[] {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize",
            "/invocations"}) {
            HttpResponse<String> response = server.postBytes(path, body);
            assertThat(response.statusCode()).as("%s %s: %s", path, name, response.body()).isEqualTo(400);
            assertThat(TestServer.parse(response.body()).at("/error/type").asText()).isEqualTo("invalid_request_error");
            // What the JSON parser advises its own caller ("enable `JsonReadFeature...`") is no help to a client.
            assertThat(TestServer.parse(response.body()).at("/error/message").asText()).doesNotContain("enable `");
        }
    }

    /** Values past their type are out of range above, and the message gives the whole range. */
    @Test
    void integersOutOfRangeStateTheRangeTheyMiss() {
        assertThat(assertError(server.post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 99999999999999999999}"),
                400, "max_tokens")).isEqualTo("max_tokens must be an integer in [0, 2147483647], got 99999999999999999999");
        assertThat(assertError(server.post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2147483648}"),
                400, "max_tokens")).isEqualTo("max_tokens must be an integer in [0, 2147483647], got 2147483648");
        assertThat(assertError(server.post("/v1/completions", "{\"prompt\": \"x\", \"seed\": 18446744073709551615}"),
                400, "seed")).isEqualTo("seed must be an integer in [-9223372036854775808, 9223372036854775807], got "
                        + "18446744073709551615");
        assertThat(assertError(server.post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": -1}"),
                400, "max_tokens")).isEqualTo("max_tokens must be an integer >= 0, got -1");
        assertThat(assertError(server.post("/v1/completions", "{\"prompt\": \"x\", \"stop_token_ids\": [99999]}"),
                400, "stop_token_ids")).isEqualTo("stop_token_ids[0] must be an integer in [0, 8191], got 99999");
        assertThat(assertError(server.post("/detokenize", "{\"tokens\": [1, 2, \"3\"]}"), 400, "tokens"))
                .isEqualTo("tokens[2] must be an integer, got a string");
    }

    @Test
    void unknownRouteIs404AndWrongMethodIs405WithTheAllowedMethods() {
        assertError(server.get("/v1/nothing"), 404, null);
        HttpResponse<String> getCompletions = server.get("/v1/completions");
        assertError(getCompletions, 405, null);
        assertThat(getCompletions.headers().allValues("Allow")).containsExactly("POST");
        HttpResponse<String> deleteModels = server.send(HttpRequest.newBuilder(URI.create(server.url("/v1/models")))
                .DELETE());
        assertError(deleteModels, 405, null);
        assertThat(deleteModels.headers().allValues("Allow")).containsExactly("GET");
        HttpResponse<String> postModel = server.post("/v1/models/coil-demo", "{}");
        assertError(postModel, 405, null);
        assertThat(postModel.headers().allValues("Allow")).containsExactly("GET");
    }

    @Test
    void apiKeyGuardsTheApiButNotHealthOrThePlayground() {
        try (TestServer guarded = TestServer.start(ServerOptions.defaults("127.0.0.1", 0).withApiKey("sesame"),
                TestServer.ENGINE_OPTIONS)) {
            String body = "{\"prompt\": \"x\", \"max_tokens\": 1}";
            assertThat(assertError(guarded.post("/v1/completions", body), 401, null)).contains("API key");
            assertError(guarded.post("/v1/completions", body, "Authorization", "Bearer wrong"), 401, null);
            assertError(guarded.post("/v1/chat/completions", "{}"), 401, null);
            assertError(guarded.get("/v1/models"), 401, null);
            assertError(guarded.post("/tokenize", "{\"prompt\": \"x\"}"), 401, null);
            assertError(guarded.get("/metrics"), 401, null);
            assertError(guarded.post("/invocations", body), 401, null);
            assertError(guarded.get("/load"), 401, null);
            assertThat(TestServer.parse(guarded.get("/v1/models").body()).at("/error/code").asText())
                    .isEqualTo("invalid_api_key");

            assertThat(guarded.get("/health").statusCode()).isEqualTo(200);
            assertThat(guarded.get("/").statusCode()).isEqualTo(200);
            assertThat(guarded.post("/v1/completions", body, "Authorization", "Bearer sesame").statusCode()).isEqualTo(200);
            assertThat(guarded.get("/metrics", "Authorization", "Bearer sesame").statusCode()).isEqualTo(200);

            // Anthropic's clients send x-api-key; under /v1/messages an error is Anthropic's object.
            String message = "{\"max_tokens\": 1, \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}";
            var refused = guarded.post("/v1/messages", message, "x-api-key", "wrong");
            assertThat(refused.statusCode()).isEqualTo(401);
            assertThat(TestServer.parse(refused.body()).at("/error/type").asText()).isEqualTo("authentication_error");
            assertThat(guarded.post("/v1/messages", message, "x-api-key", "sesame").statusCode()).isEqualTo(200);
            assertThat(guarded.post("/v1/completions", body, "x-api-key", "sesame").statusCode()).isEqualTo(200);
        }
    }

    @Test
    void bodyOverTheLimitIs413WithOrWithoutContentLength() {
        try (TestServer small = TestServer.start(ServerOptions.defaults("127.0.0.1", 0).withMaxBodyBytes(1024),
                TestServer.ENGINE_OPTIONS)) {
            byte[] big = ("{\"prompt\": \"" + "a".repeat(2000) + "\"}").getBytes(StandardCharsets.UTF_8);
            assertError(small.postBytes("/v1/completions", big), 413, null);
            HttpResponse<String> chunked = small.send(HttpRequest.newBuilder(URI.create(small.url("/v1/completions")))
                    .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(big))));
            assertError(chunked, 413, null);
            assertThat(small.post("/v1/completions", "{\"prompt\": \"a\", \"max_tokens\": 1}").statusCode()).isEqualTo(200);
        }
    }

    @Test
    void fullWaitingQueueIs429() {
        try (TestServer full = TestServer.start(ServerOptions.defaults("127.0.0.1", 0),
                TestServer.ENGINE_OPTIONS.withMaxWaiting(0))) {
            HttpResponse<String> response = full.post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 1}");
            assertError(response, 429, null);
            assertThat(TestServer.parse(response.body()).at("/error/code").asText()).isEqualTo("server_overloaded");
            assertError(full.post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                    + "\"stream\": true}"), 429, null);
        }
    }

    /**
     * Constraints of a request that leave it no token: a 400 naming allowed_token_ids when none may
     * come first (JSON mode's output must open with a brace the allowed ids lack); once a token came
     * (the only allowed id, which a bad word forbids twice in a row), the same 400 without streaming
     * and an error event ending the stream after that token. The server answers the next request.
     */
    @Test
    void constraintsThatLeaveNoTokenAreA400NamingThem() {
        JsonNode the = server.postJson("/tokenize", "{\"prompt\": \" the\", \"add_special_tokens\": false}").get("tokens");
        assertThat(the).hasSize(1);
        String allowed = "\"allowed_token_ids\": [" + the.get(0).asInt() + "]";
        String message = assertError(server.post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", "
                + "\"content\": \"hi\"}], \"response_format\": {\"type\": \"json_object\"}, " + allowed + "}"),
                400, "allowed_token_ids");
        assertThat(message).contains("no token is left to generate first", "grammar");

        String repeated = "{\"prompt\": \"The Debian package manager\", \"max_tokens\": 8, " + allowed
                + ", \"bad_words\": [\" the the\"]";
        HttpResponse<String> whole = server.post("/v1/completions", repeated + "}");
        assertThat(assertError(whole, 400, "allowed_token_ids")).contains("after 1 generated token", "bad_words");
        assertThat(TestServer.parse(whole.body()).at("/error/code").asText()).isEqualTo("no_token_left");

        HttpResponse<String> streamed = server.post("/v1/completions", repeated + ", \"stream\": true}");
        assertThat(streamed.statusCode()).isEqualTo(200);
        java.util.List<JsonNode> events = TestServer.events(streamed.body());
        assertThat(events.getFirst().at("/choices/0/text").asText()).isEqualTo(" the");
        assertThat(events.getLast().at("/error/code").asText()).as(streamed.body()).isEqualTo("no_token_left");
        assertThat(events.getLast().at("/error/param").asText()).isEqualTo("allowed_token_ids");

        assertThat(server.post("/v1/completions", "{\"prompt\": \"a\", \"max_tokens\": 2}").statusCode()).isEqualTo(200);
    }
}
