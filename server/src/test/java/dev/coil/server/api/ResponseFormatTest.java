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
 * OpenAI's response_format json_object on the demo model, which was never trained on JSON: whole
 * answers and streams hold one JSON object (or, cut by max_tokens, its start); other formats are a
 * 400.
 */
class ResponseFormatTest {

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
    void jsonObjectAnswersAreJsonObjects() throws Exception {
        List<String> closed = new ArrayList<>();
        for (int seed = 0; seed < 6; seed++) {
            String request = "\"messages\": [{\"role\": \"user\", \"content\": \"Describe apt as JSON.\"}], "
                    + "\"max_tokens\": 48, \"temperature\": 0.9, \"seed\": " + seed
                    + ", \"response_format\": {\"type\": \"json_object\"}";
            JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
            String content = choice.at("/message/content").asText();
            // Cut by max_tokens, an answer is the start of an object (the engine's tests check it is a
            // prefix of one, character by character); ended by itself, a whole one.
            assertThat(content.strip()).startsWith("{");
            if (choice.get("finish_reason").asText().equals("stop")) {
                assertThat(TestServer.JSON.readTree(content).isObject()).as(content).isTrue();
                closed.add(content);
            }
            StringBuilder streamed = new StringBuilder();
            TestServer.events(server.post("/v1/chat/completions", "{" + request + ", \"stream\": true}").body())
                    .forEach(event -> streamed.append(event.at("/choices/0/delta/content").asText("")));
            assertThat(streamed.toString()).isEqualTo(content);
        }
        System.out.println("[json] closed objects: " + closed);
        assertThat(closed).as("answers that closed their object").isNotEmpty();
    }

    @Test
    void otherFormatsAreRefusedByName() {
        HttpResponse<String> schema = server.post("/v1/completions", "{\"prompt\": \"x\", \"response_format\": "
                + "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"a\", \"schema\": {}}}}");
        assertThat(schema.statusCode()).isEqualTo(400);
        JsonNode error = TestServer.parse(schema.body()).get("error");
        assertThat(error.get("param").asText()).isEqualTo("response_format");
        assertThat(error.get("message").asText()).contains("json_schema");
    }
}
