package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.engine.runner.EngineStats;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A client that goes away cancels its own request, which the engine then frees: mid-stream (while a
 * request streaming beside it finishes untouched), during its prefill, when no token has been written
 * that could fail, and while it waits for a whole answer. A client that sends more after its request
 * is not taken for gone.
 */
class DisconnectTest {

    /**
     * Prompt steps of 128 tokens, each ending at a prefix-cache snapshot, so that a long prompt takes
     * many steps and a later request with the same prompt finds how much of it the engine computed.
     */
    private static final EngineOptions SMALL_STEPS = TestServer.ENGINE_OPTIONS.withMaxBatchedTokens(128)
            .withSnapshotIntervalBlocks(8);
    private static final int LONG_PROMPT_TOKENS = 4096;

    @Test
    void disconnectCancelsOnlyTheDisconnectedRequest() throws Exception {
        try (TestServer server = TestServer.start()) {
            String neighbour = "{\"prompt\": \"Debian packages\", \"max_tokens\": 40, \"temperature\": 0, \"ignore_eos\": true";
            String expected = server.postJson("/v1/completions", neighbour + "}").at("/choices/0/text").asText();

            // 8000 tokens would take most of a minute: only a cancellation ends it quickly.
            String body = "{\"prompt\": \"The\", \"max_tokens\": 8000, \"ignore_eos\": true, \"stream\": true}";
            try (Socket socket = send(server, body)) {
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

    /** A streamed answer's client, and one waiting for a whole answer, gone while the prompt is computed. */
    @ParameterizedTest(name = "stream {0}")
    @ValueSource(booleans = {true, false})
    void disconnectDuringPrefillCancelsBeforeThePromptIsComputed(boolean stream) throws Exception {
        try (TestServer server = TestServer.start(ServerOptions.defaults("127.0.0.1", 0), SMALL_STEPS)) {
            String prompt = promptIds(LONG_PROMPT_TOKENS);
            try (Socket socket = send(server, "{\"prompt\": " + prompt
                    + ", \"max_tokens\": 150, \"ignore_eos\": true, \"stream\": " + stream + "}")) {
                if (stream) {
                    // A stream's headers go out when it is queued; a whole answer's only at its end.
                    BufferedReader in = new BufferedReader(
                            new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
                    assertThat(in.readLine()).isEqualTo("HTTP/1.1 200 OK");
                }
                awaitPrefillStarted(server);
            }

            assertCancelledAndFreed(server);
            assertThat(computedPromptTokens(server, prompt)).as("prompt tokens computed before the cancellation")
                    .isLessThan(LONG_PROMPT_TOKENS / 2);
        }
    }

    @Test
    void bytesSentAfterTheRequestDoNotCancelItButCloseTheConnectionAfterTheAnswer() throws Exception {
        try (TestServer server = TestServer.start(ServerOptions.defaults("127.0.0.1", 0), SMALL_STEPS)) {
            // 16 prompt steps: the connection is read several times before the answer.
            String body = "{\"prompt\": " + promptIds(2048) + ", \"max_tokens\": 3, \"ignore_eos\": true}";
            try (Socket socket = send(server, body)) {
                awaitPrefillStarted(server);
                // A second request before the first's answer, which a client must not send after a POST.
                socket.getOutputStream().write("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
                        .getBytes(StandardCharsets.UTF_8));
                socket.getOutputStream().flush();

                String response = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertThat(response).startsWith("HTTP/1.1 200 OK").containsIgnoringCase("\r\nConnection: close\r\n");
                JsonNode answer = TestServer.parse(response.substring(response.indexOf("\r\n\r\n") + 4));
                assertThat(answer.at("/choices/0/finish_reason").asText()).isEqualTo("length");
                assertThat(answer.at("/usage/completion_tokens").asInt()).isEqualTo(3);
            }
            assertThat(server.metric("coil_requests_total{finish_reason=\"cancelled\"}")).isZero();
        }
    }

    /** A prompt of {@code length} token ids, all within the demo model's 8192-token vocabulary. */
    private static String promptIds(int length) {
        return IntStream.range(0, length).mapToObj(i -> Integer.toString(100 + i * 37 % 8000))
                .collect(Collectors.joining(",", "[", "]"));
    }

    /** A raw connection that has sent {@code body} to /v1/completions, so that the test decides when it closes. */
    private static Socket send(TestServer server, String body) throws IOException {
        return server.openPost("/v1/completions", body);
    }

    /** Waits until the engine holds cache blocks for the request: its prompt is being computed. */
    private static void awaitPrefillStarted(TestServer server) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (server.model().engine().stats().kvBlocksInUse() == 0) {
            assertThat(System.nanoTime()).as("waiting for the prefill to start").isLessThan(deadline);
            Thread.sleep(1);
        }
    }

    /** Waits for the request's cancellation, then checks that the engine holds nothing of it. */
    private static void assertCancelledAndFreed(TestServer server) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (server.metric("coil_requests_total{finish_reason=\"cancelled\"}") < 1) {
            assertThat(System.nanoTime()).as("waiting for the cancellation").isLessThan(deadline);
            Thread.sleep(10);
        }
        assertThat(server.metric("coil_requests_total{finish_reason=\"length\"}")).isZero();
        EngineStats stats = server.model().engine().stats();
        assertThat(stats.waitingRequests()).isZero();
        assertThat(stats.kvBlocksInUse()).isZero();
        assertThat(stats.stateSlotsInUse()).isZero();
        deadline = System.nanoTime() + 5_000_000_000L;
        while (server.server().state().inFlight() > 0) {
            assertThat(System.nanoTime()).as("waiting for the handler to return").isLessThan(deadline);
            Thread.sleep(10);
        }
    }

    /**
     * How much of {@code prompt} the engine computed before its request was cancelled: what the
     * prefix cache serves of it to a new request (each prompt step leaves a snapshot).
     */
    private static int computedPromptTokens(TestServer server, String prompt) {
        JsonNode answer = server.postJson("/v1/completions", "{\"prompt\": " + prompt + ", \"max_tokens\": 1}");
        return answer.at("/usage/prompt_tokens_details/cached_tokens").asInt();
    }
}
