package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SageMaker's POST /invocations answers each body as the route its fields name (chat, completions,
 * Responses), whole and streamed, with that route's errors; GET /load counts the requests in flight.
 */
class InvocationsTest {

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
    void eachBodyIsAnsweredAsTheRouteItsFieldsName() {
        List<String[]> cases = List.of(
                new String[] {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"Name a "
                        + "package manager.\"}], \"max_tokens\": 8, \"temperature\": 0}", "/choices/0/message/content"},
                new String[] {"/v1/completions", "{\"prompt\": \"The Debian package manager\", \"max_tokens\": 8, "
                        + "\"temperature\": 0}", "/choices/0/text"},
                new String[] {"/v1/responses", "{\"input\": \"Name a package manager.\", \"max_output_tokens\": 8, "
                        + "\"temperature\": 0}", "/output/0/content/0/text"});
        for (String[] each : cases) {
            JsonNode direct = server.postJson(each[0], each[1]);
            JsonNode invoked = server.postJson("/invocations", each[1]);
            assertThat(invoked.get("object")).as(each[0]).isEqualTo(direct.get("object"));
            assertThat(invoked.at(each[2]).asText()).as(each[0]).isEqualTo(direct.at(each[2]).asText()).isNotEmpty();
            assertThat(invoked.get("usage")).isEqualTo(direct.get("usage"));
        }

        String streamed = "{\"messages\": [{\"role\": \"user\", \"content\": \"Name a package manager.\"}], "
                + "\"max_tokens\": 8, \"temperature\": 0, \"stream\": true}";
        StringBuilder text = new StringBuilder();
        for (JsonNode chunk : TestServer.events(server.post("/invocations", streamed).body())) {
            assertThat(chunk.get("object").asText()).isEqualTo("chat.completion.chunk");
            text.append(chunk.at("/choices/0/delta/content").asText(""));
        }
        assertThat(text.toString()).isEqualTo(server.postJson("/v1/chat/completions", cases.getFirst()[1])
                .at("/choices/0/message/content").asText());

        server.assertRefused("/invocations", "{\"prompt\": \"x\", \"max_tokens\": -1}", "max_tokens", "max_tokens");
        HttpResponse<String> neither = server.post("/invocations", "{\"model\": \"coil-demo\"}");
        assertThat(neither.statusCode()).isEqualTo(400);
        assertThat(TestServer.parse(neither.body()).at("/error/message").asText())
                .startsWith("POST /invocations takes a chat completion request (messages)");
    }

    @Test
    void loadCountsTheRequestsInFlight() throws Exception {
        assertThat(TestServer.parse(server.get("/load").body()).get("server_load").asInt()).isZero();
        HttpResponse<InputStream> open = server.http().send(HttpRequest.newBuilder(URI.create(server.url("/v1/completions")))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
                        "{\"prompt\": \"apt\", \"max_tokens\": 200, \"ignore_eos\": true, \"stream\": true}")).build(),
                HttpResponse.BodyHandlers.ofInputStream());
        try (BufferedReader events = new BufferedReader(new InputStreamReader(open.body(), StandardCharsets.UTF_8))) {
            assertThat(events.readLine()).startsWith("data: ");
            assertThat(TestServer.parse(server.get("/load").body()).get("server_load").asInt()).isEqualTo(1);
            while (events.readLine() != null) {
                // read the stream to its end
            }
        }
        long deadline = System.nanoTime() + 10_000_000_000L;
        int load;
        do {
            load = TestServer.parse(server.get("/load").body()).get("server_load").asInt();
        } while (load != 0 && System.nanoTime() < deadline);
        assertThat(load).isZero();
    }
}
