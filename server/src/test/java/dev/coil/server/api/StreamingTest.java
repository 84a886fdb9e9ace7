package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Server-Sent Events as OpenAI sends them: the raw wire format, chunk shapes, the usage chunk only
 * when asked for, Coil's timings in the last chunk, keep-alive comments during a long prefill, and
 * the same text as the non-streamed answer for the same seed.
 */
class StreamingTest {

    /** Keep-alive far shorter than the prefill of a long prompt, so comments must appear. */
    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start(ServerOptions.defaults("127.0.0.1", 0).withKeepAlive(Duration.ofMillis(5)),
                TestServer.ENGINE_OPTIONS);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @Test
    void wireFormatIsDataLinesEndedByDone() {
        HttpResponse<String> response = server.post("/v1/completions",
                "{\"prompt\": \"apt-get\", \"max_tokens\": 5, \"temperature\": 0, \"stream\": true}");

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Type").orElseThrow()).startsWith("text/event-stream");
        String body = response.body();
        assertThat(body).endsWith("data: [DONE]\n\n");
        for (String block : body.split("\n\n")) {
            assertThat(block).matches("(?s)(data: \\{.*\\}|data: \\[DONE\\]|: keep-alive)").doesNotContain("\n");
        }
        List<JsonNode> events = TestServer.events(body);
        assertThat(events).allSatisfy(event -> {
            assertThat(event.get("object").asText()).isEqualTo("text_completion");
            assertThat(event.get("id").asText()).isEqualTo(events.getFirst().get("id").asText()).startsWith("cmpl-");
            assertThat(event.get("choices")).hasSize(1);
            assertThat(event.has("usage")).as("usage only when stream_options asks").isFalse();
        });
        JsonNode last = events.getLast();
        assertThat(last.at("/choices/0/finish_reason").asText()).isIn("length", "stop");
        assertThat(last.get("timings").get("prefill_ms").asDouble()).isPositive();
        assertThat(last.has("paths")).isTrue();
        events.subList(0, events.size() - 1).forEach(event -> {
            assertThat(event.at("/choices/0/finish_reason").isNull()).isTrue();
            assertThat(event.has("timings")).isFalse();
        });
    }

    @Test
    void chatStreamOpensWithTheRoleAndEndsWithTheUsageChunkWhenAsked() {
        String body = server.post("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": "What is dpkg?"}], "max_tokens": 6, "temperature": 0,
                 "stream": true, "stream_options": {"include_usage": true}}""").body();

        List<JsonNode> events = TestServer.events(body);
        assertThat(events.getFirst().at("/choices/0/delta/role").asText()).isEqualTo("assistant");
        assertThat(events).allSatisfy(event -> assertThat(event.get("object").asText()).isEqualTo("chat.completion.chunk"));
        events.subList(0, events.size() - 1).forEach(event -> assertThat(event.get("usage").isNull()).isTrue());
        JsonNode usageChunk = events.getLast();
        assertThat(usageChunk.get("choices")).isEmpty();
        JsonNode whole = server.postJson("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": "What is dpkg?"}], "max_tokens": 6, "temperature": 0}""");
        assertThat(usageChunk.get("usage")).isEqualTo(whole.get("usage"));
        assertThat(usageChunk.get("timings").get("generated_tokens").asInt())
                .isEqualTo(whole.at("/usage/completion_tokens").asInt());
        assertThat(events.get(events.size() - 2).at("/choices/0/finish_reason").asText())
                .isEqualTo(whole.at("/choices/0/finish_reason").asText());
    }

    /**
     * vLLM's continuous_usage_stats: each chunk with a choice carries that choice's usage so far
     * (its prompt, the tokens it has generated), the last chunk the request's; without include_usage
     * it asks for nothing.
     */
    @Test
    void continuousUsageCountsEachChoicesTokensSoFar() {
        String request = "\"prompt\": [\"Packages are\", \"The Debian kernel\"], \"max_tokens\": 5, \"temperature\": 0, "
                + "\"ignore_eos\": true, \"stream\": true";
        List<JsonNode> events = TestServer.events(server.post("/v1/completions", "{" + request
                + ", \"stream_options\": {\"include_usage\": true, \"continuous_usage_stats\": true}}").body());
        int[] promptTokens = new int[2];
        for (int prompt = 0; prompt < 2; prompt++) {
            promptTokens[prompt] = server.postJson("/tokenize", "{\"prompt\": \""
                    + (prompt == 0 ? "Packages are" : "The Debian kernel") + "\"}").get("count").asInt();
        }
        int[] seen = new int[2];
        for (JsonNode event : events.subList(0, events.size() - 1)) {
            int choice = event.at("/choices/0/index").asInt();
            JsonNode usage = event.get("usage");
            assertThat(usage.get("prompt_tokens").asInt()).isEqualTo(promptTokens[choice]);
            int generated = usage.get("completion_tokens").asInt();
            assertThat(generated).as("choice %d", choice).isGreaterThanOrEqualTo(seen[choice]);
            assertThat(usage.get("total_tokens").asInt()).isEqualTo(promptTokens[choice] + generated);
            seen[choice] = generated;
        }
        assertThat(seen).containsExactly(5, 5);
        JsonNode last = events.getLast();
        assertThat(last.get("choices")).isEmpty();
        assertThat(last.at("/usage/completion_tokens").asInt()).isEqualTo(10);

        List<JsonNode> plain = TestServer.events(server.post("/v1/completions", "{" + request
                + ", \"stream_options\": {\"continuous_usage_stats\": true}}").body());
        assertThat(plain).allSatisfy(event -> assertThat(event.has("usage")).isFalse());
    }

    @Test
    void streamedAndWholeAnswersAgreeForTheSameSeed() {
        String request = "\"prompt\": [\"Packages are\", \"The kernel\"], \"max_tokens\": 12, \"temperature\": 0.8, "
                + "\"top_p\": 0.95, \"seed\": 5, \"n\": 2";
        JsonNode whole = server.postJson("/v1/completions", "{" + request + "}");
        List<JsonNode> events = TestServer.events(server.post("/v1/completions",
                "{" + request + ", \"stream\": true}").body());

        String[] streamed = {"", "", "", ""};
        for (JsonNode event : events) {
            JsonNode choice = event.get("choices").get(0);
            streamed[choice.get("index").asInt()] += choice.get("text").asText();
        }
        assertThat(whole.get("choices")).hasSize(4);
        for (int i = 0; i < 4; i++) {
            assertThat(streamed[i]).as("choice %d", i).isEqualTo(whole.at("/choices/" + i + "/text").asText());
        }
    }

    @Test
    void chatStreamAndWholeAnswerAgreeForTheSameSeed() {
        String request = "\"messages\": [{\"role\": \"user\", \"content\": \"Name a text editor.\"}], "
                + "\"max_tokens\": 12, \"temperature\": 1.0, \"seed\": 42";
        String whole = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0/message/content").asText();
        StringBuilder streamed = new StringBuilder();
        for (JsonNode event : TestServer.events(server.post("/v1/chat/completions", "{" + request + ", \"stream\": true}").body())) {
            streamed.append(event.at("/choices/0/delta/content").asText(""));
        }
        assertThat(streamed.toString()).isEqualTo(whole).isNotEmpty();
    }

    @Test
    void longPrefillIsBridgedByKeepAliveComments() {
        String prompt = "Debian is a free operating system. ".repeat(150);
        String body = server.post("/v1/completions", "{\"prompt\": \"" + prompt + "\", \"max_tokens\": 2, "
                + "\"temperature\": 0, \"stream\": true}").body();

        assertThat(body).startsWith(": keep-alive\n\n");
        assertThat(TestServer.events(body)).isNotEmpty();
    }

    @Test
    void echoStreamsThePromptFirstWithItsLogprobs() {
        List<JsonNode> events = TestServer.events(server.post("/v1/completions", """
                {"prompt": "The package", "max_tokens": 3, "temperature": 0, "echo": true, "logprobs": 1,
                 "stream": true}""").body());

        JsonNode first = events.getFirst().at("/choices/0");
        assertThat(first.get("text").asText()).isEqualTo("The package");
        assertThat(first.at("/logprobs/token_logprobs/0").isNull()).isTrue();
        JsonNode whole = server.postJson("/v1/completions", """
                {"prompt": "The package", "max_tokens": 3, "temperature": 0, "echo": true, "logprobs": 1}""");
        StringBuilder text = new StringBuilder();
        int tokens = 0;
        for (JsonNode event : events) {
            text.append(event.at("/choices/0/text").asText());
            tokens += event.at("/choices/0/logprobs/tokens").size();
        }
        assertThat(text.toString()).isEqualTo(whole.at("/choices/0/text").asText());
        assertThat(tokens).isEqualTo(whole.at("/choices/0/logprobs/tokens").size());
    }
}
