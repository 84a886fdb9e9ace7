package dev.coil.server.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpServer;
import dev.coil.server.Main;
import dev.coil.server.TestServer;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code coil run-batch} end to end on the demo model, as vLLM's run-batch is used: a file in and a file
 * out, or an input read by GET and the results written by PUT; a missing input is one clear error.
 */
class RunBatchCommandTest {

    private static final String BATCH = """
            {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "coil-demo", \
            "messages": [{"role": "user", "content": "Name a package manager."}], "max_tokens": 8, "temperature": 0}}

            {"custom_id": "b", "method": "POST", "url": "/v1/completions", "body": {"prompt": "apt", "max_tokens": 4, \
            "temperature": 0}}
            {"custom_id": "c", "method": "POST", "url": "/v1/models", "body": {}}
            """;

    @TempDir
    Path folder;

    @Test
    void aFileOfRequestsIsAnsweredIntoAFileOfResults() throws IOException {
        Path input = Files.writeString(folder.resolve("batch.jsonl"), BATCH);
        Path output = folder.resolve("results.jsonl");
        Run run = run("run-batch", "--model", TestServer.DEMO_MODEL.toString(), "--threads", "1", "--cache-memory",
                "256M", "-i", input.toString(), "-o", output.toString());
        assertThat(run.exit()).as(run.log()).isZero();
        checkResults(Files.readString(output));
        assertThat(run.log()).contains("coil: run-batch: 3 requests, 2 answered, 1 failed");
    }

    @Test
    void anInputByUrlIsAnsweredToAUrl() throws IOException {
        HttpServer files = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        AtomicReference<String> put = new AtomicReference<>();
        files.createContext("/in.jsonl", exchange -> {
            byte[] body = BATCH.getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        files.createContext("/out.jsonl", exchange -> {
            put.set(exchange.getRequestMethod() + " " + new String(exchange.getRequestBody().readAllBytes(),
                    StandardCharsets.UTF_8));
            exchange.sendResponseHeaders(200, -1);
            exchange.close();
        });
        files.start();
        try {
            String base = "http://127.0.0.1:" + files.getAddress().getPort();
            Run run = run("run-batch", "--model", TestServer.DEMO_MODEL.toString(), "--threads", "1", "--cache-memory",
                    "256M", "-i", base + "/in.jsonl", "-o", base + "/out.jsonl");
            assertThat(run.exit()).as(run.log()).isZero();
            assertThat(put.get()).startsWith("PUT ");
            checkResults(put.get().substring("PUT ".length()));

            Run missing = run("run-batch", "--model", TestServer.DEMO_MODEL.toString(), "-i",
                    folder.resolve("none.jsonl").toString(), "-o", folder.resolve("out.jsonl").toString());
            assertThat(missing.exit()).isEqualTo(1);
            assertThat(missing.err()).startsWith("coil: --input-file: no file ");
            Run notServed = run("run-batch", "--model", TestServer.DEMO_MODEL.toString(), "-i", base + "/elsewhere",
                    "-o", folder.resolve("out.jsonl").toString());
            assertThat(notServed.exit()).isEqualTo(1);
            assertThat(notServed.err()).contains("--input-file: GET " + base + "/elsewhere answered 404");
        } finally {
            files.stop(0);
        }
    }

    private static void checkResults(String text) {
        List<JsonNode> results = new ArrayList<>();
        text.lines().forEach(line -> results.add(TestServer.parse(line)));
        assertThat(results).hasSize(3);
        assertThat(results.get(0).get("custom_id").asText()).isEqualTo("a");
        assertThat(results.get(0).at("/response/body/choices/0/message/content").asText()).isNotEmpty();
        assertThat(results.get(0).at("/response/body/usage/completion_tokens").asInt()).isPositive();
        assertThat(results.get(1).get("custom_id").asText()).isEqualTo("b");
        assertThat(results.get(1).at("/response/body/choices/0/text").asText()).isNotEmpty();
        assertThat(results.get(2).get("custom_id").asText()).isEqualTo("c");
        assertThat(results.get(2).at("/error/line").asInt()).isEqualTo(4);
    }

    /** What one in-process run printed: its exit code, its error line, and the log on System.err. */
    private record Run(int exit, String err, String log) {}

    private static Run run(String... args) {
        java.io.PrintStream originalErr = System.err;
        java.io.ByteArrayOutputStream log = new java.io.ByteArrayOutputStream();
        StringWriter errors = new StringWriter();
        System.setErr(new java.io.PrintStream(log, true, StandardCharsets.UTF_8));
        try {
            int exit = Main.commandLine().setErr(new PrintWriter(errors, true)).execute(args);
            return new Run(exit, errors.toString(), log.toString(StandardCharsets.UTF_8));
        } finally {
            System.setErr(originalErr);
        }
    }
}
