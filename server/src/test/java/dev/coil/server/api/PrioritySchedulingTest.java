package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * vLLM's priority: under --scheduling-policy priority, a request of a better (lower) priority that
 * arrives later is run before one of a worse priority waiting already; first come first served takes
 * no priority but 0.
 */
class PrioritySchedulingTest {

    @Test
    void aBetterPriorityRunsFirstUnderPrioritySchedulingOnly() throws Exception {
        try (TestServer fcfs = TestServer.start()) {
            fcfs.assertRefused("/v1/completions", "{\"prompt\": \"apt\", \"max_tokens\": 2, \"priority\": 3}", "priority",
                    "--scheduling-policy priority");
            assertThat(fcfs.post("/v1/completions", "{\"prompt\": \"apt\", \"max_tokens\": 2, \"priority\": 0}")
                    .statusCode()).isEqualTo(200);
        }
        // One sequence at a time: what waits is taken in the scheduler's order.
        try (TestServer server = TestServer.start(ServerOptions.defaults("127.0.0.1", 0),
                TestServer.ENGINE_OPTIONS.withMaxSequences(1).withPriorityScheduling(true))) {
            HttpResponse<InputStream> running = server.http().send(post(server, "{\"prompt\": \"apt\", "
                    + "\"max_tokens\": 600, \"ignore_eos\": true, \"stream\": true}"), HttpResponse.BodyHandlers.ofInputStream());
            try (BufferedReader events = new BufferedReader(new InputStreamReader(running.body(), StandardCharsets.UTF_8))) {
                assertThat(events.readLine()).startsWith("data: ");
                List<String> finished = new CopyOnWriteArrayList<>();
                CompletableFuture<?> worse = send(server, 9, finished);
                Thread.sleep(100); // the worse one is queued first
                CompletableFuture<?> better = send(server, -1, finished);
                while (events.readLine() != null) {
                    // the running request goes to its end
                }
                CompletableFuture.allOf(worse, better).join();
                assertThat(finished).containsExactly("priority -1", "priority 9");
            }
        }
    }

    private static CompletableFuture<?> send(TestServer server, int priority, List<String> finished) {
        return server.http().sendAsync(post(server, "{\"prompt\": \"apt\", \"max_tokens\": 4, \"priority\": " + priority
                + "}"), HttpResponse.BodyHandlers.ofString()).thenAccept(response -> {
                    assertThat(response.statusCode()).as(response.body()).isEqualTo(200);
                    finished.add("priority " + priority);
                });
    }

    private static HttpRequest post(TestServer server, String body) {
        return HttpRequest.newBuilder(URI.create(server.url("/v1/completions"))).header("Content-Type",
                "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
    }
}
