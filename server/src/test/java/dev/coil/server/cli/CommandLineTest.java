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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
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
        assertThat(score.get("ranks")).hasSize(ids.size());
        assertThat(score.get("ranks").get(0).isNull()).isTrue();
        assertThat(score.get("top_logprobs")).hasSize(ids.size());
        JsonNode logits = expected.get("prefill_logits");
        for (int position = 0; position < ids.size(); position++) {
            double[] logSoftmax = logSoftmax(logits.get(position));
            if (position + 1 < ids.size()) {
                double logprob = logSoftmax[ids.get(position + 1).asInt()];
                assertThat(score.get("logprobs").get(position + 1).asDouble())
                        .isCloseTo(logprob, org.assertj.core.data.Offset.offset(1e-4));
                // The rank: 1 + the tokens transformers makes more likely, but for those within the tolerance.
                long surelyAbove = java.util.Arrays.stream(logSoftmax).filter(other -> other > logprob + 1e-4).count();
                long maybeAbove = java.util.Arrays.stream(logSoftmax).filter(other -> other > logprob - 1e-4).count() - 1;
                assertThat(score.get("ranks").get(position + 1).asLong()).as("rank at %d", position + 1)
                        .isBetween(surelyAbove + 1, maybeAbove + 1);
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
        // --help lists the object's fields as they are.
        List<String> fields = new ArrayList<>();
        first.fieldNames().forEachRemaining(fields::add);
        StringWriter help = new StringWriter();
        Main.commandLine().setOut(new PrintWriter(help, true)).execute("generate", "--help");
        assertThat(help.toString().replaceAll("\\s+", " ")).contains("{" + String.join(", ", fields) + "}");
        assertThat(fields).contains("finish_reason");
    }

    @Test
    void badInputFailsWithoutAStackTrace() {
        assertFailsWithOneLine(1, "generate", "--model", FIXTURE.toString(), "--prompt-ids", "1,99999");
        assertFailsWithOneLine(1, "generate", "--model", FIXTURE.resolve("missing").toString(), "--prompt", "x");
        assertFailsWithOneLine(1, "generate", "--model", FIXTURE.toString(), "--prompt", "x", "--top-p", "1.5");
        assertFailsWithOneLine(1, "generate", "--model", FIXTURE.toString(), "--prompt", "x", "--ssd-precision",
                "fp8");
        // A value out of range fails in the engine's words, which say what the range is.
        Output topK = runCapturing(1, "generate", "--model", FIXTURE.toString(), "--prompt", "x", "--top-k", "-3");
        assertThat(topK.err()).isEqualTo("coil: top_k must be >= -1 (-1 and 0 turn it off), got -3"
                + System.lineSeparator());
        run(0, "generate", "--model", FIXTURE.toString(), "--prompt", "x", "--top-k", "-1", "--max-tokens", "1");
    }

    /**
     * What picocli cannot parse (a malformed value, an unknown option or command) exits 2 with the
     * error and where the options are listed: two lines, not the whole usage.
     */
    @Test
    void aMalformedCommandLineGetsTheErrorAndAPointerToHelp() {
        Output malformed = runCapturing(2, "generate", "--model", FIXTURE.toString(), "--max-tokens", "many");
        assertThat(malformed.err().lines().toList()).containsExactly(
                "coil: Invalid value for option '--max-tokens': 'many' is not an int",
                "Try 'coil generate --help' for the options.");

        Output unknown = runCapturing(2, "bench", "--bogus");
        assertThat(unknown.err().lines().toList()).hasSize(2);
        assertThat(unknown.err()).startsWith("coil: Unknown option: '--bogus'")
                .contains("Try 'coil bench --help' for the options.");

        Output misspelt = runCapturing(2, "generat", "--prompt", "x");
        assertThat(misspelt.err().lines().toList()).hasSize(2);
        assertThat(misspelt.err()).startsWith("coil: ").contains("generat")
                .contains("Did you mean generate").contains("Try 'coil --help' for the commands.");
        Output vllm = runCapturing(2, "serve", "--gpu-memory-utilization=0.9");
        assertThat(vllm.err().lines().toList()).hasSize(3);
        assertThat(vllm.err()).startsWith("coil: Unknown option: '--gpu-memory-utilization=0.9'")
                .contains("coil: vLLM's --gpu-memory-utilization: Coil sizes its KV and state cache with --cache-memory")
                .contains("Try 'coil serve --help' for the options.");
        for (Output output : List.of(malformed, unknown, misspelt, vllm)) {
            assertThat(output.err()).doesNotContain("\tat ").doesNotContain("Exception").doesNotContain("Usage:");
        }
    }

    /**
     * Scoring is a request with max_tokens 0: a prompt that fills the context window is scored, one
     * token more is refused as generate refuses it, on one device and with the context sharded.
     */
    @Test
    void scoreRefusesAPromptPastTheContextWindowAsGenerateDoes() throws Exception {
        int window = JSON.readTree(Files.readString(FIXTURE.resolve("config.json")))
                .get("max_position_embeddings").asInt();
        String[] sharded = {"--devices", "cpu:2", "--context-parallel", "always", "--threads", "2"};
        String refusal = "coil: the prompt (" + (window + 1) + " tokens) does not fit the model's context window of "
                + window + " tokens" + System.lineSeparator();

        Output generate = runCapturing(1, "generate", "--model", FIXTURE.toString(), "--prompt-ids",
                promptIds(window + 1), "--max-tokens", "1");
        assertThat(generate.err()).isEqualTo(refusal);
        assertThat(runCapturing(1, "score", "--model", FIXTURE.toString(), "--prompt-ids", promptIds(window + 1))
                .err()).isEqualTo(refusal);
        assertThat(runCapturing(1, concat(new String[] {"score", "--model", FIXTURE.toString(), "--prompt-ids",
            promptIds(window + 1)}, sharded)).err()).isEqualTo(refusal);

        JsonNode full = JSON.readTree(run(0, "score", "--model", FIXTURE.toString(), "--prompt-ids", promptIds(window)));
        assertThat(full.get("logprobs")).hasSize(window);
        JsonNode fullSharded = JSON.readTree(run(0, concat(new String[] {"score", "--model", FIXTURE.toString(),
            "--prompt-ids", promptIds(window)}, sharded)));
        assertThat(fullSharded.get("logprobs")).hasSize(window);
    }

    /** Counts bench cannot measure with are refused by name before any model is written or loaded. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "--prompt-lengths 0 --decode-tokens 1         | --prompt-lengths must be at least 1, got 0",
        "--prompt-lengths 512,-5                      | --prompt-lengths must be at least 1, got -5",
        "--decode-tokens 0                            | --decode-tokens must be at least 1, got 0",
        "--threads 0                                  | --threads must be at least 1, got 0",
        "--serving --concurrency 0                    | --concurrency must be at least 1, got 0",
        "--serving --concurrency 1,4,-16              | --concurrency must be at least 1, got -16",
        "--serving --prompt-tokens 0                  | --prompt-tokens must be at least 1, got 0",
        "--serving --max-tokens -1                    | --max-tokens must be at least 1, got -1",
        "--serving --chat-turns 0                     | --chat-turns must be at least 1, got 0",
        "--serving --snapshot-interval -1             | --snapshot-interval must be at least 0, got -1",
        "--serving --threads -3                       | --threads must be at least 1, got -3",
        "--serving --structured                       | give --serving or --structured, not both"})
    void benchRefusesCountsItCannotMeasureBeforeLoadingAModel(String options, String message) {
        // A folder that is not there: a check that came after loading would fail on it instead.
        String[] args = concat(new String[] {"bench", "--model", FIXTURE.resolve("missing").toString()},
                options.trim().split(" "));
        assertThat(runCapturing(1, args).err()).isEqualTo("coil: " + message + System.lineSeparator());
    }

    /** bench --structured on the bundled demo model: a row a grammar, each with its decode time. */
    @Test
    @Timeout(120)
    void benchStructuredMeasuresEachGrammar() {
        String out = run(0, "bench", "--structured", "--model", Path.of("..", "models", "coil-demo").toString(),
                "--max-tokens", "6", "--prompt-tokens", "8", "--threads", "2");
        assertThat(out).containsPattern("(?m)^\\| none \\|  \\| 8 \\| [0-9.]+ \\| [0-9.]+ \\| [-+][0-9.]+ ms \\|$");
        for (String grammar : List.of("json_schema", "pattern", "regex")) {
            for (String made : List.of("anew each request", "the same each request")) {
                assertThat(out).containsPattern("(?m)^\\| " + grammar + " \\| " + made
                        + " \\| 8 \\| [0-9.]+ \\| [0-9.]+ \\| [-+][0-9.]+ ms \\|$");
            }
        }
    }

    /** Every command refuses fewer than one thread; serve before it listens. */
    @Test
    @Timeout(120)
    void everyCommandRefusesFewerThanOneThread() {
        String model = FIXTURE.toString();
        for (String[] args : List.of(
                new String[] {"generate", "--model", model, "--prompt", "x", "--threads", "0"},
                new String[] {"score", "--model", model, "--prompt", "x", "--threads", "-3"},
                new String[] {"serve", "--model", model, "--port", "0", "--threads", "0"},
                new String[] {"bench", "--model", FIXTURE.resolve("missing").toString(), "--threads", "0"})) {
            Output output = runCapturing(1, args);
            assertThat(output.err()).as("stderr of %s", String.join(" ", args))
                    .isEqualTo("coil: --threads must be at least 1, got " + args[args.length - 1]
                            + System.lineSeparator());
        }
    }

    /**
     * Help wraps only at spaces: picocli may also break a line after ':', ',' or '-' inside a word,
     * which splits a value such as cuda:0,cuda:1 in two. Every word of every description must come
     * out whole, and every line of the synopsis must close the brackets it opens.
     */
    @Test
    void helpSplitsNoWordAcrossLines() {
        CommandLine top = Main.commandLine();
        List<CommandLine> commands = new ArrayList<>(top.getSubcommands().values());
        commands.add(top);
        for (CommandLine command : commands) {
            String help = command.getUsageMessage(CommandLine.Help.Ansi.OFF);
            List<String> lines = help.lines().toList();
            for (int i = 0; i == 0 || lines.get(i).startsWith(" "); i++) {
                String line = lines.get(i);
                assertThat(line.chars().filter(c -> c == '[').count()).as("synopsis line '%s'", line)
                        .isEqualTo(line.chars().filter(c -> c == ']').count());
            }
            Set<String> rendered = new HashSet<>(Arrays.asList(help.split("\\s+")));
            List<String> texts = new ArrayList<>(List.of(command.getCommandSpec().usageMessage().description()));
            for (CommandLine subcommand : command.getSubcommands().values()) {
                texts.addAll(List.of(subcommand.getCommandSpec().usageMessage().description()));
            }
            for (CommandLine.Model.OptionSpec option : command.getCommandSpec().options()) {
                String defaultValue = String.valueOf(option.defaultValueString());
                for (String line : option.description()) {
                    texts.add(line.replace("${DEFAULT-VALUE}", defaultValue).replace("%%", "%"));
                }
            }
            for (String text : texts) {
                for (String word : text.split("\\s+")) {
                    assertThat(rendered).as("'%s' in %s --help:%n%s", word, command.getCommandName(), help)
                            .contains(word);
                }
            }
        }
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

    /** {@code length} token ids of the fixture's vocabulary, as --prompt-ids takes them. */
    private static String promptIds(int length) {
        return new SplittableRandom(length).ints(length, 0, 384).mapToObj(Integer::toString)
                .collect(Collectors.joining(","));
    }

    private static String[] concat(String[] first, String... second) {
        String[] all = Arrays.copyOf(first, first.length + second.length);
        System.arraycopy(second, 0, all, first.length, second.length);
        return all;
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
