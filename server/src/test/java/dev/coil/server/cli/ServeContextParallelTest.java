package dev.coil.server.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.runner.CpuBackend;
import dev.coil.engine.runner.Devices;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.sdk.trace.data.SpanData;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

/**
 * serve with --devices cpu:2 --context-parallel always: the server's engine shards every request
 * over two virtual CPU devices, and the answers, the streams' last chunks and the traces say
 * "ring x2"; the same server with --context-parallel never answers the same text without it.
 */
class ServeContextParallelTest {

    private static final String COMPLETION = """
            {"prompt": "The Debian package manager", "max_tokens": 8, "temperature": 0, "ignore_eos": true""";

    private static TestServer sharded;
    private static TestServer oneDevice;

    private static ServeCommand parse(String... args) {
        ServeCommand command = new ServeCommand();
        new CommandLine(command).parseArgs(args);
        return command;
    }

    /** The tiny fixture model served as serve's flags say, in this process. */
    private static TestServer serve(String... args) {
        ServeCommand command = parse(args);
        TestServer server = TestServer.listen(ServerOptions.defaults("127.0.0.1", 0));
        server.server().serve(ServedModel.load(TestServer.TINY_MODEL, null,
                loaded -> new CpuBackend(loaded.model(), new CpuOps(new Parallel(1))),
                command.serving.contextParallelism(command.serving.modelOptions.devices()), TestServer.ENGINE_OPTIONS));
        return server;
    }

    @BeforeAll
    static void start() {
        sharded = serve("--devices", "cpu:2", "--context-parallel", "always", "--threads", "2");
        oneDevice = serve("--devices", "cpu:2", "--context-parallel", "never", "--threads", "2");
    }

    @AfterAll
    static void stop() {
        if (sharded != null) {
            sharded.close();
        }
        if (oneDevice != null) {
            oneDevice.close();
        }
    }

    private static List<String> paths(JsonNode answer) {
        List<String> paths = new ArrayList<>();
        answer.get("paths").forEach(path -> paths.add(path.asText()));
        return paths;
    }

    @Test
    void completionsSayRingX2AndAnswerAsOneDevice() {
        assertThat(sharded.model().engine().contextParallelism()).hasToString("always, ring x2, zigzag shards");
        JsonNode answer = sharded.postJson("/v1/completions", COMPLETION + "}");
        JsonNode expected = oneDevice.postJson("/v1/completions", COMPLETION + "}");
        assertThat(paths(answer)).containsExactly("ring x2", "ssd-scan", "ssm-recurrence");
        assertThat(paths(expected)).containsExactly("flash", "ssd-scan", "ssm-recurrence");
        assertThat(answer.at("/choices/0/text").asText()).isEqualTo(expected.at("/choices/0/text").asText());
        assertThat(answer.at("/usage/completion_tokens").asInt()).isEqualTo(8);
    }

    @Test
    void theStreamsLastChunkSaysRingX2() {
        String body = sharded.post("/v1/completions", COMPLETION + ", \"stream\": true}").body();
        List<JsonNode> events = TestServer.events(body);
        StringBuilder text = new StringBuilder();
        for (JsonNode event : events) {
            text.append(event.at("/choices/0/text").asText(""));
        }
        assertThat(paths(events.getLast())).contains("ring x2");
        assertThat(text.toString()).isNotEmpty().isEqualTo(
                sharded.postJson("/v1/completions", COMPLETION + "}").at("/choices/0/text").asText());
    }

    @Test
    void theTraceSaysRingX2() {
        JsonNode answer = sharded.postJson("/v1/completions", """
                {"prompt": "What is a package?", "max_tokens": 4, "temperature": 0}""");
        assertThat(paths(answer)).contains("ring x2");
        List<List<String>> traced = sharded.spans().stream().filter(span -> span.getName().equals("prefill"))
                .map(SpanData::getAttributes).map(attributes -> attributes.get(AttributeKey.stringArrayKey("coil.paths")))
                .toList();
        assertThat(traced).isNotEmpty().allSatisfy(paths -> assertThat(paths).contains("ring x2"));
    }

    @Test
    void badContextParallelValuesAreRefusedNamingTheFlag() {
        Devices two = Devices.parse("cpu:2");
        assertThatThrownBy(() -> parse("--context-parallel", "sometimes").serving.contextParallelism(two))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("--context-parallel must be auto, always or never; got 'sometimes'");
        assertThatThrownBy(() -> parse("--shard-layout", "striped").serving.contextParallelism(two))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("zigzag or contiguous");
        assertThatThrownBy(() -> parse("--devices", "cuda:0,cuda:1", "--context-parallel", "always")
                .serving.contextParallelism(Devices.parse("cuda:0,cuda:1")).apply(sharded.model().engine().model()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("context parallelism over CUDA devices");
    }

    /** The command itself fails on a bad value before it listens, with exit code 1. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void serveExitsOnABadModeBeforeListening() {
        List<Exception> failures = new ArrayList<>();
        int exit = new CommandLine(new ServeCommand()).setExecutionExceptionHandler((exception, line, result) -> {
            failures.add(exception);
            return 1;
        }).execute("--model", TestServer.TINY_MODEL.toString(), "--devices", "cpu:2", "--port", "0",
                "--context-parallel", "sometimes");
        assertThat(exit).isEqualTo(1);
        assertThat(failures).singleElement().satisfies(failure -> assertThat(failure)
                .hasMessageContaining("--context-parallel must be auto, always or never"));
    }

    @Test
    void helpListsTheContextParallelFlags() {
        StringWriter out = new StringWriter();
        new CommandLine(new ServeCommand()).setOut(new PrintWriter(out)).execute("--help");
        String help = out.toString().replaceAll("\\s+", " ");
        assertThat(help).contains("--context-parallel=MODE").contains("--shard-layout=LAYOUT")
                .contains("(default auto)").contains("(default zigzag)");
    }
}
