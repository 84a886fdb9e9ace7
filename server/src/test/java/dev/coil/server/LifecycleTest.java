package dev.coil.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The server's life: listening before the model is loaded (/health 503, then 200), and shutdown
 * that refuses new requests, lets those in flight finish within the timeout and cancels the rest,
 * telling their streams so after the 200.
 */
class LifecycleTest {

    @Test
    void healthIs503WhileTheModelLoadsThen200() {
        try (TestServer server = TestServer.listen(ServerOptions.defaults("127.0.0.1", 0))) {
            HttpResponse<String> loading = server.get("/health");
            assertThat(loading.statusCode()).isEqualTo(503);
            assertThat(TestServer.parse(loading.body()).get("status").asText()).isEqualTo("loading");
            assertThat(server.get("/ping").statusCode()).as("vLLM's /ping answers as /health").isEqualTo(503);
            HttpResponse<String> models = server.get("/v1/models");
            assertThat(models.statusCode()).isEqualTo(503);
            assertThat(TestServer.parse(models.body()).at("/error/code").asText()).isEqualTo("model_loading");
            assertThat(server.post("/v1/completions", "{\"prompt\": \"x\"}").statusCode()).isEqualTo(503);

            server.server().serve(ServedModel.load(TestServer.DEMO_MODEL, "demo", new CpuOps(new Parallel(1)),
                    TestServer.ENGINE_OPTIONS));

            HttpResponse<String> ready = server.get("/health");
            assertThat(ready.statusCode()).isEqualTo(200);
            assertThat(TestServer.parse(ready.body()).get("status").asText()).isEqualTo("ok");
            assertThat(server.get("/ping").body()).isEqualTo(ready.body());
            assertThat(server.post("/ping", "").statusCode()).isEqualTo(200);
            // vLLM's /version: the build's version, which the pom sets.
            HttpResponse<String> version = server.get("/version");
            assertThat(version.statusCode()).isEqualTo(200);
            assertThat(TestServer.parse(version.body()).get("version").asText()).matches("\\d+\\.\\d+\\.\\d+.*");
            assertThat(TestServer.parse(server.get("/v1/models").body()).at("/data/0/id").asText()).isEqualTo("demo");
        }
    }

    /** More served names (vLLM's several --served-model-name): each listed and found; responses name the first. */
    @Test
    void aModelAnswersToEveryNameItIsServedUnder() {
        try (TestServer server = TestServer.listen(ServerOptions.defaults("127.0.0.1", 0))) {
            ServedModel model = ServedModel.load(TestServer.DEMO_MODEL, "demo", new CpuOps(new Parallel(1)),
                    TestServer.ENGINE_OPTIONS);
            model.alsoAnswersTo(java.util.List.of("demo", "team/chat-model"));
            server.server().serve(model);
            JsonNode listed = TestServer.parse(server.get("/v1/models").body()).get("data");
            assertThat(listed).hasSize(2);
            assertThat(listed.get(0).get("id").asText()).isEqualTo("demo");
            assertThat(listed.get(1).get("id").asText()).isEqualTo("team/chat-model");
            assertThat(listed.get(1).get("max_model_len")).isEqualTo(listed.get(0).get("max_model_len"));
            assertThat(TestServer.parse(server.get("/v1/models/team/chat-model").body()).get("id").asText())
                    .isEqualTo("team/chat-model");
            assertThat(server.get("/v1/models/other").statusCode()).isEqualTo(404);
            JsonNode answer = server.postJson("/v1/completions",
                    "{\"model\": \"team/chat-model\", \"prompt\": \"apt\", \"max_tokens\": 2}");
            assertThat(answer.get("model").asText()).isEqualTo("demo");
        }
    }

    @Test
    void playgroundPageIsServedAtTheRoot() {
        try (TestServer server = TestServer.listen(ServerOptions.defaults("127.0.0.1", 0))) {
            HttpResponse<String> page = server.get("/");
            assertThat(page.statusCode()).isEqualTo(200);
            assertThat(page.headers().firstValue("Content-Type").orElseThrow()).startsWith("text/html");
            assertThat(page.body()).containsIgnoringCase("<html");
        }
    }

    @Test
    void shutdownLetsRequestsInFlightFinish() throws Exception {
        TestServer server = TestServer.start();
        try (BufferedReader stream = openStream(server, 24)) {
            String first = stream.readLine();
            assertThat(first).startsWith("data: ");
            server.close();
            List<JsonNode> events = readEvents(stream);
            assertThat(events.getLast().at("/choices/0/finish_reason").asText()).isEqualTo("length");
            assertThat(events).noneMatch(event -> event.has("error"));
        }
    }

    @Test
    void shutdownRefusesNewRequestsThenCancelsThoseStillRunningInsideTheirStream() throws Exception {
        TestServer server = TestServer.start(ServerOptions.defaults("127.0.0.1", 0)
                .withShutdownTimeout(Duration.ofSeconds(2)), TestServer.ENGINE_OPTIONS);
        try (BufferedReader stream = openStream(server, 8000)) {
            assertThat(stream.readLine()).startsWith("data: ");
            Thread shutdown = Thread.ofPlatform().start(server::close);

            waitForHealth(server, 503);
            HttpResponse<String> refused = server.post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 1}");
            assertThat(refused.statusCode()).isEqualTo(503);
            assertThat(TestServer.parse(refused.body()).at("/error/code").asText()).isEqualTo("shutting_down");

            List<JsonNode> events = readEvents(stream);
            JsonNode error = events.getLast().get("error");
            assertThat(error).as("the last event is an error: %s", events.getLast()).isNotNull();
            assertThat(error.get("code").asText()).isEqualTo("shutting_down");
            shutdown.join();
        }
    }

    /**
     * A whole (non-streamed) answer is written after its handler returns. Shutdown must wait for
     * that write too: here the client reads nothing until shutdown has begun, so the server's write
     * of the multi-megabyte answer is still blocked on the connection when the engine is done.
     */
    @Test
    void shutdownFinishesWritingAWholeAnswer() throws Exception {
        TestServer server = TestServer.start();
        int promptTokens = 2000;
        StringBuilder ids = new StringBuilder();
        for (int i = 0; i < promptTokens; i++) {
            ids.append(i == 0 ? "" : ",").append(100 + i % 900);
        }
        byte[] body = ("{\"prompt\": [" + ids + "], \"max_tokens\": 0, \"echo\": true, \"logprobs\": 20}")
                .getBytes(StandardCharsets.UTF_8);
        try (Socket socket = new Socket()) {
            socket.setReceiveBufferSize(4096);
            socket.connect(new InetSocketAddress("127.0.0.1", server.port()));
            OutputStream out = socket.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Connection: close\r\nContent-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();

            ServerState state = server.server().state();
            long deadline = System.nanoTime() + 120_000_000_000L;
            while (state.inFlight() == 0) {
                assertThat(System.nanoTime()).as("waiting for the request to start").isLessThan(deadline);
                Thread.sleep(5);
            }
            while (state.inFlight() > 0) {
                assertThat(System.nanoTime()).as("waiting for the handler to return").isLessThan(deadline);
                Thread.sleep(5);
            }
            Thread shutdown = Thread.ofPlatform().start(server::close);
            Thread.sleep(500);

            byte[] response = socket.getInputStream().readAllBytes();
            shutdown.join();
            String text = new String(response, StandardCharsets.UTF_8);
            int headerEnd = text.indexOf("\r\n\r\n");
            assertThat(headerEnd).as("a response head").isPositive();
            assertThat(text).startsWith("HTTP/1.1 200");
            byte[] json = java.util.Arrays.copyOfRange(response, text.substring(0, headerEnd + 4)
                    .getBytes(StandardCharsets.UTF_8).length, response.length);
            // Connection: close, so the body runs to the end of the stream: a cut answer is short
            // and does not parse.
            assertThat(json.length).as("bytes of the answer (about 0.5 KB a prompt token)").isGreaterThan(500_000);
            JsonNode answer = TestServer.parse(new String(json, StandardCharsets.UTF_8));
            assertThat(answer.at("/choices/0/logprobs/tokens").size()).isEqualTo(promptTokens);
            assertThat(answer.at("/usage/prompt_tokens").asInt()).isEqualTo(promptTokens);
        }
    }

    /** A greedy completion stream of {@code maxTokens} tokens; the 200 and headers already read. */
    private static BufferedReader openStream(TestServer server, int maxTokens) throws Exception {
        HttpResponse<InputStream> response = server.http().send(HttpRequest.newBuilder(URI.create(server.url("/v1/completions")))
                .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"The\", \"max_tokens\": " + maxTokens
                        + ", \"temperature\": 0, \"ignore_eos\": true, \"stream\": true}")).build(),
                HttpResponse.BodyHandlers.ofInputStream());
        assertThat(response.statusCode()).isEqualTo(200);
        return new BufferedReader(new InputStreamReader(response.body(), StandardCharsets.UTF_8));
    }

    /** The remaining data events up to [DONE]. */
    private static List<JsonNode> readEvents(BufferedReader stream) throws Exception {
        List<JsonNode> events = new ArrayList<>();
        String line;
        while ((line = stream.readLine()) != null) {
            if (line.equals("data: [DONE]")) {
                return events;
            }
            if (line.startsWith("data: ")) {
                events.add(TestServer.parse(line.substring(6)));
            }
        }
        throw new AssertionError("the stream ended without [DONE] after " + events.size() + " events");
    }

    private static void waitForHealth(TestServer server, int status) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (server.get("/health").statusCode() != status) {
            assertThat(System.nanoTime()).as("waiting for /health %d", status).isLessThan(deadline);
            Thread.sleep(5);
        }
    }
}
