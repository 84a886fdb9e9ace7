package dev.coil.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.server.telemetry.Telemetry;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A Coil server on a free port for tests, serving the bundled demo model (small, with a tokenizer
 * and a chat template) on one CPU thread, with its spans collected in memory.
 */
public final class TestServer implements AutoCloseable {

    public static final Path DEMO_MODEL = Path.of("..", "models", "coil-demo");
    /** A tiny random GraniteMoeHybrid (hidden size 32, 4 layers, 256-token context) with a tokenizer. */
    public static final Path TINY_MODEL = Path.of("..", "engine", "src", "test", "resources", "fixtures", "granitemoehybrid");
    /** A small cache: enough for the tests' few dozen short sequences. */
    public static final EngineOptions ENGINE_OPTIONS = EngineOptions.DEFAULTS.withCacheMemory("256M");
    public static final ObjectMapper JSON = new ObjectMapper();
    /**
     * The demo model's chat template, opening a {@code <think>} block after the assistant's header unless
     * {@code enable_thinking} is false (as Qwen 3's and Nemotron Nano 2's templates do).
     */
    public static final String THINKING_TEMPLATE = "{% for message in messages %}<|start_of_role|>"
            + "{{ message['role'] }}<|end_of_role|>{{ message['content'] }}<|endoftext|>\n{% endfor %}"
            + "{% if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>"
            + "{% if enable_thinking is not defined or enable_thinking %}<think>\n{% endif %}{% endif %}";

    private final CoilServer server;
    private final List<SpanData> spans;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();

    private TestServer(CoilServer server, List<SpanData> spans) {
        this.server = server;
        this.spans = spans;
    }

    /** The demo model served with default server options. */
    public static TestServer start() {
        return start(ServerOptions.defaults("127.0.0.1", 0), ENGINE_OPTIONS);
    }

    public static TestServer start(ServerOptions options, EngineOptions engineOptions) {
        return start(DEMO_MODEL, options, engineOptions);
    }

    public static TestServer start(Path model, ServerOptions options, EngineOptions engineOptions) {
        TestServer server = listen(options);
        server.server.serve(ServedModel.load(model, null, new CpuOps(new Parallel(1)), engineOptions));
        return server;
    }

    /** Writes into {@code folder} the demo model with {@link #THINKING_TEMPLATE} as its chat template. */
    public static Path writeThinkingModel(Path folder) throws IOException {
        Path demo = DEMO_MODEL.toAbsolutePath();
        for (String file : List.of("config.json", "tokenizer.json", "generation_config.json", "model.safetensors")) {
            Files.copy(demo.resolve(file), folder.resolve(file));
        }
        var config = (ObjectNode) parse(Files.readString(
                demo.resolve("tokenizer_config.json")));
        config.put("chat_template", THINKING_TEMPLATE);
        Files.writeString(folder.resolve("tokenizer_config.json"), config.toString());
        return folder;
    }

    /** Listening, with no model loaded yet (as while a real one loads). */
    public static TestServer listen(ServerOptions options) {
        List<SpanData> spans = new CopyOnWriteArrayList<>();
        SpanExporter exporter = new SpanExporter() {
            @Override
            public CompletableResultCode export(Collection<SpanData> batch) {
                spans.addAll(batch);
                return CompletableResultCode.ofSuccess();
            }

            @Override
            public CompletableResultCode flush() {
                return CompletableResultCode.ofSuccess();
            }

            @Override
            public CompletableResultCode shutdown() {
                return CompletableResultCode.ofSuccess();
            }
        };
        CoilServer server = CoilServer.start(options, Telemetry.create(SimpleSpanProcessor.create(exporter)));
        return new TestServer(server, spans);
    }

    public CoilServer server() {
        return server;
    }

    public ServedModel model() {
        return server.state().model().orElseThrow();
    }

    public List<SpanData> spans() {
        return new ArrayList<>(spans);
    }

    public int port() {
        return server.port();
    }

    public String url(String path) {
        return "http://127.0.0.1:" + server.port() + path;
    }

    public HttpResponse<String> post(String path, String body, String... headers) {
        return send(HttpRequest.newBuilder(URI.create(url(path)))
                .POST(HttpRequest.BodyPublishers.ofString(body)).header("Content-Type", "application/json"), headers);
    }

    public HttpResponse<String> postBytes(String path, byte[] body, String... headers) {
        return send(HttpRequest.newBuilder(URI.create(url(path)))
                .POST(HttpRequest.BodyPublishers.ofByteArray(body)).header("Content-Type", "application/json"), headers);
    }

    public HttpResponse<String> get(String path, String... headers) {
        return send(HttpRequest.newBuilder(URI.create(url(path))).GET(), headers);
    }

    public HttpResponse<String> delete(String path, String... headers) {
        return send(HttpRequest.newBuilder(URI.create(url(path))).DELETE(), headers);
    }

    /** GETs {@code path}, checks the answer is a 200, and parses it. */
    public JsonNode getJson(String path) {
        HttpResponse<String> response = get(path);
        assertThat(response.statusCode()).as(response.body()).isEqualTo(200);
        return parse(response.body());
    }

    /** Checks {@code response} is an OpenAI-style error of {@code status} whose message holds {@code message}. */
    public static void assertError(HttpResponse<String> response, int status, String message) {
        assertThat(response.statusCode()).as(response.body()).isEqualTo(status);
        JsonNode error = parse(response.body()).get("error");
        assertThat(error.get("message").asText()).contains(message);
        assertThat(error.get("type").asText()).isEqualTo("invalid_request_error");
    }

    /**
     * A raw connection that has sent {@code body} as a JSON POST to {@code path}, so that the test reads
     * what it wants and decides when the client goes away (closing it).
     */
    public Socket openPost(String path, String body) throws IOException {
        Socket socket = new Socket("127.0.0.1", port());
        socket.setSoTimeout(120_000);
        OutputStream out = socket.getOutputStream();
        out.write(("POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body)
                .getBytes(StandardCharsets.UTF_8));
        out.flush();
        return socket;
    }

    public HttpResponse<String> send(HttpRequest.Builder request, String... headers) {
        if (headers.length > 0) {
            request.headers(headers);
        }
        try {
            return http.send(request.timeout(Duration.ofSeconds(120)).build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new IllegalStateException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    public HttpClient http() {
        return http;
    }

    /** POSTs and parses the JSON answer. */
    public JsonNode postJson(String path, String body) {
        return parse(post(path, body).body());
    }

    public static JsonNode parse(String json) {
        try {
            return JSON.readTree(json);
        } catch (IOException e) {
            throw new IllegalStateException("not JSON: " + json, e);
        }
    }

    /**
     * An independent judge of structured outputs, networknt's JSON Schema validator (draft 2020-12):
     * its complaints about {@code text} under {@code schema}, none when valid.
     */
    public static List<String> schemaErrors(String schema, String text) {
        List<String> errors = new ArrayList<>();
        SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12).getSchema(parse(schema))
                .validate(parse(text)).forEach(error -> errors.add(error.toString()));
        return errors;
    }

    /** Posts {@code body} and checks the answer is a 400 naming {@code param}, its message holding {@code message}. */
    public void assertRefused(String path, String body, String param, String message) {
        HttpResponse<String> response = post(path, body);
        assertThat(response.statusCode()).as(body).isEqualTo(400);
        JsonNode error = parse(response.body()).get("error");
        assertThat(error.get("param").asText()).as(body).isEqualTo(param);
        assertThat(error.get("message").asText()).as(body).contains(message);
        assertThat(error.get("type").asText()).isEqualTo("invalid_request_error");
    }

    /** The data events of an SSE body, in order, without the final [DONE]; fails on anything else. */
    public static List<JsonNode> events(String body) {
        List<JsonNode> events = new ArrayList<>();
        boolean done = false;
        for (String block : body.split("\n\n")) {
            if (block.startsWith(":")) {
                continue;
            }
            if (!block.startsWith("data: ") || done) {
                throw new IllegalStateException("unexpected SSE block: " + block);
            }
            String data = block.substring("data: ".length());
            if (data.equals("[DONE]")) {
                done = true;
            } else {
                events.add(parse(data));
            }
        }
        if (!done) {
            throw new IllegalStateException("the stream did not end with [DONE]: " + body);
        }
        return events;
    }

    /** A Prometheus sample's value, e.g. {@code coil_requests_total{finish_reason="cancelled"}}; 0 if absent. */
    public double metric(String sample) {
        for (String line : get("/metrics").body().split("\n")) {
            if (line.startsWith(sample + " ")) {
                return Double.parseDouble(line.substring(sample.length() + 1).trim());
            }
        }
        return 0;
    }

    @Override
    public void close() {
        server.shutdown();
    }
}
