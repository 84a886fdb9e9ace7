package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.runner.EngineStats;
import dev.coil.server.TestServer;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * A client that goes away mid-stream cancels its own request, which the engine then frees, while a
 * request streaming beside it finishes untouched.
 */
class DisconnectTest {

    @Test
    void disconnectCancelsOnlyTheDisconnectedRequest() throws Exception {
        try (TestServer server = TestServer.start()) {
            String neighbour = "{\"prompt\": \"Debian packages\", \"max_tokens\": 40, \"temperature\": 0, \"ignore_eos\": true";
            String expected = server.postJson("/v1/completions", neighbour + "}").at("/choices/0/text").asText();

            // 8000 tokens would take most of a minute: only a cancellation ends it quickly.
            String body = "{\"prompt\": \"The\", \"max_tokens\": 8000, \"ignore_eos\": true, \"stream\": true}";
            try (Socket socket = new Socket("127.0.0.1", server.port())) {
                OutputStream out = socket.getOutputStream();
                out.write(("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                        + "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body)
                        .getBytes(StandardCharsets.UTF_8));
                out.flush();
                BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
                assertThat(in.readLine()).isEqualTo("HTTP/1.1 200 OK");
                String line;
                int chunks = 0;
                while (chunks < 3 && (line = in.readLine()) != null) {
                    if (line.startsWith("data: ")) {
                        chunks++;
                    }
                }
                assertThat(chunks).isEqualTo(3);

                CompletableFuture<HttpResponse<String>> beside = server.http().sendAsync(
                        HttpRequest.newBuilder(URI.create(server.url("/v1/completions")))
                                .POST(HttpRequest.BodyPublishers.ofString(neighbour + ", \"stream\": true}"))
                                .build(), HttpResponse.BodyHandlers.ofString());
                socket.close();

                StringBuilder text = new StringBuilder();
                TestServer.events(beside.get().body()).forEach(event -> text.append(event.at("/choices/0/text").asText()));
                assertThat(text.toString()).isEqualTo(expected);
            }

            long deadline = System.nanoTime() + 30_000_000_000L;
            while (server.metric("coil_requests_total{finish_reason=\"cancelled\"}") < 1) {
                assertThat(System.nanoTime()).as("waiting for the cancellation").isLessThan(deadline);
                Thread.sleep(10);
            }
            assertThat(server.metric("coil_requests_total{finish_reason=\"cancelled\"}")).isEqualTo(1.0);
            assertThat(server.metric("coil_requests_total{finish_reason=\"length\"}")).isEqualTo(2.0);
            EngineStats stats = server.model().engine().stats();
            assertThat(stats.waitingRequests()).isZero();
            assertThat(stats.kvBlocksInUse()).isZero();
            assertThat(stats.stateSlotsInUse()).isZero();
            assertThat(server.server().state().inFlight()).isZero();
        }
    }
}
