package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Many streaming clients at once each get exactly the greedy answer a lone client gets (on the tiny
 * fixture model, whose random weights make every token count).
 */
class ConcurrencyTest {

    private static final int CLIENTS = 32;
    private static final String[] PROMPTS = {"hello world", "the cat sat", "a b c d e f", "tokens"};

    @Test
    void thirtyTwoConcurrentStreamsAllMatchTheirSingleAnswer() {
        try (TestServer server = TestServer.start(TestServer.TINY_MODEL, ServerOptions.defaults("127.0.0.1", 0),
                TestServer.ENGINE_OPTIONS)) {
            String[] expected = new String[PROMPTS.length];
            for (int p = 0; p < PROMPTS.length; p++) {
                expected[p] = server.postJson("/v1/completions", request(PROMPTS[p], false)).at("/choices/0/text").asText();
            }
            List<CompletableFuture<HttpResponse<String>>> streams = new ArrayList<>();
            for (int client = 0; client < CLIENTS; client++) {
                streams.add(server.http().sendAsync(HttpRequest.newBuilder(URI.create(server.url("/v1/completions")))
                        .POST(HttpRequest.BodyPublishers.ofString(request(PROMPTS[client % PROMPTS.length], true)))
                        .build(), HttpResponse.BodyHandlers.ofString()));
            }

            for (int client = 0; client < CLIENTS; client++) {
                HttpResponse<String> response = streams.get(client).join();
                assertThat(response.statusCode()).isEqualTo(200);
                StringBuilder text = new StringBuilder();
                List<JsonNode> events = TestServer.events(response.body());
                events.forEach(event -> text.append(event.at("/choices/0/text").asText()));
                assertThat(text.toString()).as("client %d", client).isEqualTo(expected[client % PROMPTS.length]);
                assertThat(events.getLast().at("/choices/0/finish_reason").asText()).isEqualTo("length");
                assertThat(events.getLast().at("/timings/generated_tokens").asInt()).isEqualTo(24);
            }
            assertThat(server.metric("coil_requests_total{finish_reason=\"length\"}")).isEqualTo(CLIENTS + PROMPTS.length);
        }
    }

    private static String request(String prompt, boolean stream) {
        return "{\"prompt\": \"" + prompt + "\", \"max_tokens\": 24, \"temperature\": 0, \"ignore_eos\": true, \"stream\": " + stream + "}";
    }
}
