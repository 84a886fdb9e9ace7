package dev.coil.server.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.coil.server.Main;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * The generate and score commands end to end on a fixture model: the JSON shapes the README
 * documents, and score's logprobs against the log-softmax of the logits transformers computed.
 */
class CommandLineTest {

    private static final Path FIXTURE = Path.of("..", "engine", "src", "test", "resources", "fixtures", "bamba");
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What one in-process run of the command line printed. */
    private record Output(String out, String err) {}

    /** Runs the command line in-process; returns stdout, and asserts the exit code. */
    private static String run(int expectedExit, String... args) {
        return runCapturing(expectedExit, args).out();
    }

    /** Runs the command line as {@link Main#main} does (its error handler included), capturing both streams. */
    private static Output runCapturing(int expectedExit, String... args) {
        PrintStream original = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        StringWriter errors = new StringWriter();
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            int exit = Main.commandLine().setErr(new PrintWriter(errors, true)).execute(args);
            assertThat(exit).as("exit code of %s", String.join(" ", args)).isEqualTo(expectedExit);
        } finally {
            System.setOut(original);
        }
        return new Output(captured.toString(StandardCharsets.UTF_8), errors.toString());
    }

    @Test
    void scorePrintsTransformersLogprobsForEveryPosition() throws Exception {
        JsonNode expected = JSON.readTree(Files.readString(FIXTURE.resolve("expected.json"))).get("cases").get(0);
        JsonNode ids = expected.get("prompt_ids");
        StringBuilder idList = new StringBuilder();
        ids.forEach(id -> idList.append(idList.isEmpty() ? "" : ",").append(id.asInt()));

        JsonNode score = JSON.readTree(run(0, "score", "--model", FIXTURE.toString(), "--prompt-ids",
                idList.toString(), "--top-logprobs", "3"));

        assertThat(score.get("token_ids")).isEqualTo(ids);
        assertThat(score.get("logprobs").get(0).isNull()).isTrue();
        assertThat(score.get("logprobs")).hasSize(ids.size());
        assertThat(score.get("top_logprobs")).hasSize(ids.size());
        JsonNode logits = expected.get("prefill_logits");
        for (int position = 0; position < ids.size(); position++) {
            double[] logSoftmax = logSoftmax(logits.get(position));
            if (position + 1 < ids.size()) {
                assertThat(score.get("logprobs").get(position + 1).asDouble())
                        .isCloseTo(logSoftmax[ids.get(position + 1).asInt()], org.assertj.core.data.Offset.offset(1e-4));
            }
            JsonNode top = score.get("top_logprobs").get(position);
            assertThat(top).hasSize(3);
            int best = argmax(logSoftmax);
            assertThat(top.get(0).get("id").asInt()).isEqualTo(best);
            assertThat(top.get(0).get("logprob").asDouble()).isCloseTo(logSoftmax[best], org.assertj.core.data.Offset.offset(1e-4));
        }
    }

    @Test
    void generateJsonHasTheDocumentedShapeAndIsReproducibleWithASeed() throws Exception {
        String[] args = {"generate", "--model", FIXTURE.toString(), "--prompt", "Hello there", "--max-tokens", "6",
            "--temperature", "0.9", "--seed", "5", "--json"};
        JsonNode first = JSON.readTree(run(0, args));
        JsonNode second = JSON.readTree(run(0, args));
        assertThat(first.get("token_ids")).hasSizeLessThanOrEqualTo(6);
        assertThat(first.get("text").isTextual()).isTrue();
        assertThat(first.get("timings").get("prompt_tokens").asInt()).isPositive();
        assertThat(second.get("token_ids")).isEqualTo(first.get("token_ids"));
        assertThat(second.get("text")).isEqualTo(first.get("text"));
    }

    @Test
    void badInputFailsWithoutAStackTrace() {
        assertFailsWithOneLine(1, "generate", "--model", FIXTURE.toString(), "--prompt-ids", "1,99999");
        assertFailsWithOneLine(1, "generate", "--model", FIXTURE.resolve("missing").toString(), "--prompt", "x");
        assertFailsWithOneLine(1, "generate", "--model", FIXTURE.toString(), "--prompt", "x", "--top-p", "1.5");
        assertFailsWithOneLine(1, "generate", "--model", FIXTURE.toString(), "--prompt", "x", "--ssd-precision",
                "fp8");
        // A malformed option is picocli's usage error: exit 2, the message and the usage, no stack trace.
        Output usage = runCapturing(2, "generate", "--model", FIXTURE.toString(), "--max-tokens", "many");
        assertThat(usage.err()).contains("many").doesNotContain("\tat ").doesNotContain("Exception");
    }

    private static void assertFailsWithOneLine(int exit, String... args) {
        Output output = runCapturing(exit, args);
        assertThat(output.err()).as("stderr of %s", String.join(" ", args))
                .startsWith("coil: ")
                .doesNotContain("\tat ")
                .doesNotContain("coil: null");
        assertThat(output.err().strip().lines()).as("stderr of %s", String.join(" ", args)).hasSize(1);
    }

    /** The CPU always scans in f32: --ssd-precision tf32 leaves its tokens and logprobs as they are. */
    @Test
    void theCpuIgnoresATf32ScanPrecision() throws Exception {
        String[] args = {"generate", "--model", FIXTURE.toString(), "--devices", "cpu", "--prompt", "Hello there",
            "--max-tokens", "6", "--json"};
        JsonNode f32 = JSON.readTree(run(0, args));
        String[] tf32Args = java.util.Arrays.copyOf(args, args.length + 2);
        tf32Args[args.length] = "--ssd-precision";
        tf32Args[args.length + 1] = "tf32";
        JsonNode tf32 = JSON.readTree(run(0, tf32Args));
        assertThat(f32.get("token_ids")).isNotEmpty();
        assertThat(tf32.get("token_ids")).isEqualTo(f32.get("token_ids"));
        assertThat(tf32.get("text")).isEqualTo(f32.get("text"));
    }

    private static double[] logSoftmax(JsonNode row) {
        double max = Double.NEGATIVE_INFINITY;
        for (JsonNode value : row) {
            max = Math.max(max, value.asDouble());
        }
        double sum = 0;
        for (JsonNode value : row) {
            sum += Math.exp(value.asDouble() - max);
        }
        double[] out = new double[row.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = row.get(i).asDouble() - max - Math.log(sum);
        }
        return out;
    }

    private static int argmax(double[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }
}
