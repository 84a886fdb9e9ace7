package dev.coil.server.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import java.io.StringWriter;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A batch answered against the demo model: each line's body answers as the same request sent alone
 * does (greedy, whatever else is in flight), results come in the input's order, API errors keep their
 * status and error body, and lines that are no request get an error line without stopping the others.
 */
class BatchRunnerTest {

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
    void eachAnswerIsTheRequestsAnswerAloneInTheInputsOrder() throws Exception {
        List<String> bodies = new ArrayList<>();
        List<String> urls = new ArrayList<>();
        String[] subjects = {"apt", "dnf", "pacman", "zypper", "nix", "brew", "pip", "npm"};
        for (String subject : subjects) {
            urls.add("/v1/chat/completions");
            bodies.add("{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me about " + subject + ".\"}], "
                    + "\"max_tokens\": 10, \"temperature\": 0}");
        }
        urls.add("/v1/completions");
        bodies.add("{\"prompt\": \"The Debian package manager\", \"max_tokens\": 8, \"temperature\": 0}");
        urls.add("/v1/responses");
        bodies.add("{\"input\": \"Name a package manager.\", \"max_output_tokens\": 8, \"temperature\": 0}");
        urls.add("/v1/messages");
        bodies.add("{\"model\": \"coil-demo\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi.\"}], "
                + "\"max_tokens\": 6, \"temperature\": 0}");
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < bodies.size(); i++) {
            lines.add("{\"custom_id\": \"request-" + i + "\", \"method\": \"POST\", \"url\": \"" + urls.get(i)
                    + "\", \"body\": " + bodies.get(i) + "}");
        }
        StringWriter out = new StringWriter();
        BatchRunner.Summary summary = new BatchRunner(URI.create(server.url("")), 4).run(lines.iterator(), out);

        List<JsonNode> results = results(out);
        assertThat(results).hasSize(bodies.size());
        assertThat(summary).isEqualTo(new BatchRunner.Summary(bodies.size(), bodies.size(), 0, summary.outputTokens()));
        assertThat(summary.outputTokens()).isPositive();
        for (int i = 0; i < bodies.size(); i++) {
            JsonNode result = results.get(i);
            assertThat(result.get("custom_id").asText()).isEqualTo("request-" + i);
            assertThat(result.get("id").asText()).startsWith("batch_req_");
            assertThat(result.get("error").isNull()).isTrue();
            assertThat(result.at("/response/status_code").asInt()).isEqualTo(200);
            JsonNode body = result.at("/response/body");
            assertThat(result.at("/response/request_id").asText()).isEqualTo(body.get("id").asText());
            JsonNode alone = server.postJson(urls.get(i), bodies.get(i));
            assertThat(text(body)).as(urls.get(i)).isEqualTo(text(alone)).isNotEmpty();
        }
    }

    @Test
    void badLinesAndRefusedRequestsFailAloneWithTheirErrors() throws Exception {
        String good = "{\"custom_id\": \"good\", \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": "
                + "{\"prompt\": \"apt\", \"max_tokens\": 3, \"temperature\": 0}}";
        List<String> lines = List.of(
                "not json",
                "",
                "{\"custom_id\": \"refused\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": "
                        + "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": -1}}",
                good,
                "{\"custom_id\": \"embeddings\", \"method\": \"POST\", \"url\": \"/v1/embeddings\", \"body\": {}}",
                "{\"custom_id\": \"streamed\", \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": "
                        + "{\"prompt\": \"x\", \"stream\": true}}",
                "{\"custom_id\": \"get\", \"method\": \"GET\", \"url\": \"/v1/completions\", \"body\": {}}",
                "{\"custom_id\": 7, \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": {}}");
        StringWriter out = new StringWriter();
        BatchRunner.Summary summary = new BatchRunner(URI.create(server.url("")), 2).run(lines.iterator(), out);
        List<JsonNode> results = results(out);
        assertThat(results).hasSize(7);
        assertThat(summary.lines()).isEqualTo(7);
        assertThat(summary.succeeded()).isEqualTo(1);
        assertThat(summary.failed()).isEqualTo(6);

        assertInvalid(results.get(0), null, 1, "the line is not JSON");
        JsonNode refused = results.get(1);
        assertThat(refused.get("custom_id").asText()).isEqualTo("refused");
        assertThat(refused.at("/response/status_code").asInt()).isEqualTo(400);
        assertThat(refused.at("/response/body/error/param").asText()).isEqualTo("max_tokens");
        assertThat(refused.get("error").isNull()).isTrue();
        assertThat(results.get(2).at("/response/status_code").asInt()).isEqualTo(200);
        assertThat(text(results.get(2).at("/response/body")))
                .isEqualTo(text(server.postJson("/v1/completions", TestServer.parse(good).get("body").toString())));
        assertInvalid(results.get(3), "embeddings", 5, "url \"/v1/embeddings\" is not served in a batch");
        assertInvalid(results.get(4), "streamed", 6, "stream must not be true");
        assertInvalid(results.get(5), "get", 7, "method must be \"POST\"");
        assertInvalid(results.get(6), null, 8, "custom_id must be a string");
    }

    private static void assertInvalid(JsonNode result, String customId, int line, String message) {
        assertThat(result.get("custom_id").isNull() ? null : result.get("custom_id").asText()).isEqualTo(customId);
        assertThat(result.get("response").isNull()).isTrue();
        assertThat(result.at("/error/code").asText()).isEqualTo("invalid_request");
        assertThat(result.at("/error/line").asInt()).isEqualTo(line);
        assertThat(result.at("/error/message").asText()).contains(message);
    }

    /** The generated text of an answer of any of the four APIs. */
    static String text(JsonNode body) {
        if (body.has("choices")) {
            JsonNode choice = body.at("/choices/0");
            return choice.has("message") ? choice.at("/message/content").asText() : choice.get("text").asText();
        }
        if (body.has("output")) {
            return body.at("/output/0/content/0/text").asText();
        }
        return body.at("/content/0/text").asText();
    }

    static List<JsonNode> results(StringWriter out) {
        List<JsonNode> results = new ArrayList<>();
        for (String line : out.toString().split("\n")) {
            if (!line.isEmpty()) {
                results.add(TestServer.parse(line));
            }
        }
        return results;
    }
}
