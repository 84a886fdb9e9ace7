package dev.coil.server.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.coil.server.Main;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Collectors;
import org.assertj.core.data.Offset;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** score with the prompt's context sharded over virtual CPU devices prints the one-device logprobs. */
class ScoreContextParallelTest {

    private static final Path FIXTURES = Path.of("..", "engine", "src", "test", "resources", "fixtures");
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What one in-process run of the command line left: exit code, stdout, stderr, and the exception it failed with. */
    private record Run(int exit, String out, String err, Exception failure) {
    }

    private static Run run(String... args) {
        PrintStream originalOut = System.out;
        PrintStream originalErr = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        ByteArrayOutputStream capturedErr = new ByteArrayOutputStream();
        List<Exception> failures = new ArrayList<>();
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(capturedErr, true, StandardCharsets.UTF_8));
        try {
            int exit = new CommandLine(new Main()).setExecutionExceptionHandler((exception, line, result) -> {
                failures.add(exception);
                return 1;
            }).execute(args);
            return new Run(exit, captured.toString(StandardCharsets.UTF_8), capturedErr.toString(StandardCharsets.UTF_8),
                    failures.isEmpty() ? null : failures.get(0));
        } finally {
            System.setOut(originalOut);
            System.setErr(originalErr);
        }
    }

    private static String promptIds(int length) {
        return new SplittableRandom(length).ints(length, 0, 384).mapToObj(Integer::toString)
                .collect(Collectors.joining(","));
    }

    @ParameterizedTest
    @CsvSource({"bamba, cpu:2, zigzag", "granitemoehybrid_rope, cpu:3, contiguous", "nemotron_h, cpu:2, contiguous"})
    void shardedScoreEqualsOneDeviceScore(String fixture, String devices, String layout) throws Exception {
        String model = FIXTURES.resolve(fixture).toString();
        String ids = promptIds(51);
        Run single = run("score", "--model", model, "--prompt-ids", ids, "--top-logprobs", "3", "--devices", "cpu");
        Run sharded = run("score", "--model", model, "--prompt-ids", ids, "--top-logprobs", "3", "--devices", devices,
                "--context-parallel", "always", "--shard-layout", layout, "--threads", "2");
        assertThat(single.exit()).as("one device: %s", single.failure()).isZero();
        assertThat(sharded.exit()).as("sharded: %s", sharded.failure()).isZero();
        assertThat(single.err()).doesNotContain("ring");
        assertThat(sharded.err()).contains("ring x" + devices.substring(4) + ", " + layout + " shards");

        assertSameScores(JSON.readTree(sharded.out()), JSON.readTree(single.out()), 51);
    }

    private static void assertSameScores(JsonNode actual, JsonNode expected, int tokens) {
        assertThat(actual.get("token_ids")).isEqualTo(expected.get("token_ids"));
        JsonNode expectedLogprobs = expected.get("logprobs");
        JsonNode actualLogprobs = actual.get("logprobs");
        assertThat(actualLogprobs).hasSize(tokens);
        assertThat(actualLogprobs.get(0).isNull()).isTrue();
        for (int i = 1; i < tokens; i++) {
            assertThat(actualLogprobs.get(i).asDouble()).as("logprob %d", i)
                    .isCloseTo(expectedLogprobs.get(i).asDouble(), Offset.offset(1e-4));
        }
        for (int i = 0; i < tokens; i++) {
            JsonNode expectedTop = expected.get("top_logprobs").get(i);
            JsonNode actualTop = actual.get("top_logprobs").get(i);
            assertThat(actualTop).hasSameSizeAs(expectedTop);
            for (int rank = 0; rank < expectedTop.size(); rank++) {
                assertThat(actualTop.get(rank).get("logprob").asDouble())
                        .isCloseTo(expectedTop.get(rank).get("logprob").asDouble(), Offset.offset(1e-4));
            }
        }
    }

    @Test
    void autoAndNeverKeepOneDeviceAndBadValuesAreNamed() throws Exception {
        String model = FIXTURES.resolve("bamba").toString();
        String ids = promptIds(20);
        JsonNode single = JSON.readTree(run("score", "--model", model, "--prompt-ids", ids, "--devices", "cpu").out());
        // One device: the same scorer, no ring.
        for (Run oneDevice : List.of(run("score", "--model", model, "--prompt-ids", ids, "--devices", "cpu:4"),
                run("score", "--model", model, "--prompt-ids", ids, "--devices", "cpu:4", "--context-parallel", "never"),
                run("score", "--model", model, "--prompt-ids", ids, "--devices", "cpu", "--context-parallel", "always"))) {
            assertSameScores(JSON.readTree(oneDevice.out()), single, 20);
            assertThat(oneDevice.err()).doesNotContain("ring");
        }

        Run badMode = run("score", "--model", model, "--prompt-ids", ids, "--context-parallel", "sometimes");
        assertThat(badMode.exit()).isEqualTo(1);
        assertThat(badMode.failure()).hasMessageContaining("--context-parallel must be auto, always or never");
        Run badLayout = run("score", "--model", model, "--prompt-ids", ids, "--devices", "cpu:2", "--context-parallel",
                "always", "--shard-layout", "striped");
        assertThat(badLayout.failure()).hasMessageContaining("zigzag or contiguous");
        Run cuda = run("score", "--model", model, "--prompt-ids", ids, "--devices", "cuda:0,cuda:1",
                "--context-parallel", "always");
        assertThat(cuda.exit()).isEqualTo(1);
        assertThat(cuda.failure()).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("context parallelism over CUDA devices");
    }
}
