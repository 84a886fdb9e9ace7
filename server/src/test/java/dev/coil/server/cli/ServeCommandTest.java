package dev.coil.server.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.load.DType;
import dev.coil.engine.load.WeightStorage;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.runner.CpuBackend;
import dev.coil.engine.tokenizer.ChatMessage;
import dev.coil.server.Main;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import dev.coil.server.api.ReasoningFormat;
import dev.coil.server.api.ToolCallFormat;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

/**
 * serve's flags: the engine's own defaults when absent, each flag reaching its EngineOptions field;
 * an address it cannot listen on is told with its cause.
 */
class ServeCommandTest {

    private static final Path FIXTURE = Path.of("..", "engine", "src", "test", "resources", "fixtures", "bamba");

    /** What a serve that fails before listening left: exit code, its error line, and the log on System.err. */
    private record Failure(int exit, String err, String log) {}

    private static Failure serveFailing(String... args) {
        PrintStream originalErr = System.err;
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        StringWriter errors = new StringWriter();
        System.setErr(new PrintStream(log, true, StandardCharsets.UTF_8));
        try {
            String[] all = new String[args.length + 3];
            all[0] = "serve";
            all[1] = "--model";
            all[2] = FIXTURE.toString();
            System.arraycopy(args, 0, all, 3, args.length);
            int exit = Main.commandLine().setErr(new PrintWriter(errors, true)).execute(all);
            return new Failure(exit, errors.toString(), log.toString(StandardCharsets.UTF_8));
        } finally {
            System.setErr(originalErr);
        }
    }

    private static ServeCommand parse(String... args) {
        ServeCommand command = new ServeCommand();
        new CommandLine(command).parseArgs(args);
        return command;
    }

    /** The CPU serves from weights copied into memory unless --mmap; a GPU always reads them mapped. */
    @Test
    void weightsAreKeptInMemoryOnTheCpuUnlessMapped() {
        assertThat(parse().serving.modelOptions.weightStorage(Devices.cpu(1))).isEqualTo(WeightStorage.MEMORY);
        assertThat(parse("--mmap").serving.modelOptions.weightStorage(Devices.cpu(1))).isEqualTo(WeightStorage.MAPPED);
        assertThat(parse().serving.modelOptions.weightStorage(Devices.cuda(0))).isEqualTo(WeightStorage.MAPPED);
        assertThat(parse("--mmap").serving.modelOptions.weightStorage(Devices.cuda(0))).isEqualTo(WeightStorage.MAPPED);
    }

    @Test
    void withoutFlagsTheEngineDefaultsApply() {
        ServeCommand command = parse();
        assertThat(command.serving.engineOptions()).isEqualTo(EngineOptions.DEFAULTS);
        assertThat(command.host).isEqualTo("127.0.0.1");
        assertThat(command.port).isEqualTo(8080);
        assertThat(command.maxBodyBytes).as("no flag: sized from the context window").isNull();
        assertThat(parse("--max-body-bytes", "1000").maxBodyBytes).isEqualTo(1000);
        assertThat(command.apiKey).isEqualTo(System.getenv("COIL_API_KEY"));
        assertThat(parse("--api-key", "k").apiKey).isEqualTo("k");
    }

    /** The CPU's warm-up: the demo model's size takes it whole; larger models fewer tokens, down to 8 and 4. */
    @Test
    void theCpuWarmUpShrinksWithTheModel() {
        assertThat(ServingOptions.cpuWarmUps(11_300_000)).isDeepEqualTo(new int[][] {{64, 64}, {6, 8}});
        assertThat(ServingOptions.cpuWarmUps(40_000_000)).isDeepEqualTo(new int[][] {{32, 32}, {6, 8}});
        assertThat(ServingOptions.cpuWarmUps(304_000_000)).isDeepEqualTo(new int[][] {{8, 4}, {6, 4}});
        assertThat(ServingOptions.cpuWarmUps(7_000_000_000L)).isDeepEqualTo(new int[][] {{8, 4}, {6, 4}});
    }

    /**
     * The default body limit is 2 MB, or 16 bytes a token of the served window where that is more: a
     * prompt the window holds, as token ids, is not refused for its size.
     */
    @Test
    void theDefaultBodyLimitGrowsWithTheContextWindow(@org.junit.jupiter.api.io.TempDir Path folder)
            throws java.io.IOException {
        long twoMegabytes = ServerOptions.DEFAULT_MAX_BODY_BYTES;
        assertThat(ServeCommand.defaultMaxBodyBytes(TestServer.DEMO_MODEL, 0)).as("8192 tokens").isEqualTo(twoMegabytes);
        assertThat(ServeCommand.defaultMaxBodyBytes(TestServer.DEMO_MODEL, 1_000_000)).isEqualTo(16_000_000L);
        java.nio.file.Files.writeString(folder.resolve("config.json"), "{\"max_position_embeddings\": 1048576}");
        assertThat(ServeCommand.defaultMaxBodyBytes(folder, 0)).isEqualTo(16L * 1048576);
        assertThat(ServeCommand.defaultMaxBodyBytes(folder, 4096)).as("--max-model-len").isEqualTo(twoMegabytes);
        assertThat(ServeCommand.defaultMaxBodyBytes(folder.resolve("absent"), 0)).isEqualTo(twoMegabytes);
        java.nio.file.Files.writeString(folder.resolve("config.json"), "{not json");
        assertThat(ServeCommand.defaultMaxBodyBytes(folder, 0)).isEqualTo(twoMegabytes);
        // A million token ids as JSON, the longest of them seven digits: within 16 bytes a token.
        StringBuilder ids = new StringBuilder("{\"prompt\": [");
        for (int i = 0; i < 1_000_000; i++) {
            ids.append(i == 0 ? "" : ", ").append(1_000_000 + i % 9_000_000);
        }
        assertThat((long) ids.append("], \"max_tokens\": 1}").length()).isLessThan(16_000_000L);
    }

    @Test
    void engineFlagsReachTheEngineOptions() {
        EngineOptions options = parse("--block-size", "32", "--kv-dtype", "f32", "--cache-memory", "1G",
                "--max-seqs", "8", "--max-batched-tokens", "256", "--max-waiting", "3", "--no-prefix-caching",
                "--snapshot-interval", "4").serving.engineOptions();
        assertThat(options).isEqualTo(new EngineOptions(32, DType.F32, "1G", 8, 256, 3, false, 4));
        assertThat(parse("--max-model-len", "2048").serving.engineOptions().maxModelLength()).isEqualTo(2048);
        assertThat(parse().serving.engineOptions().maxModelLength()).isZero();
        assertThatThrownBy(() -> parse("--max-model-len", "0").serving.engineOptions())
                .hasMessage("--max-model-len must be positive, got 0");
    }

    /** --batch-invariant (or COIL_BATCH_INVARIANT=1, as vLLM's VLLM_BATCH_INVARIANT) reaches the options. */
    @Test
    void batchInvariantReachesTheEngineOptions() {
        assertThat(parse("--batch-invariant").serving.engineOptions().batchInvariant()).isTrue();
        assertThat(parse("--batch-invariant").serving.engineOptions().usesPrefixCache()).isFalse();
        ServeCommand plain = parse();
        assertThat(plain.serving.batchInvariant("1")).isTrue();
        assertThat(plain.serving.batchInvariant("true")).isTrue();
        assertThat(plain.serving.batchInvariant("0")).isFalse();
        assertThat(plain.serving.batchInvariant(null)).isFalse();
        assertThat(parse("--batch-invariant=false").serving.engineOptions().batchInvariant()).isFalse();
    }

    @Test
    void vllmsNamesOfTheEngineFlagsDoTheSame() {
        assertThat(parse("--max-num-seqs", "8", "--max-num-batched-tokens", "256", "--no-enable-prefix-caching")
                .serving.engineOptions()).isEqualTo(parse("--max-seqs", "8", "--max-batched-tokens", "256",
                "--no-prefix-caching").serving.engineOptions());
        assertThat(parse("--enable-prefix-caching").serving.engineOptions().prefixCaching()).isTrue();
    }

    /**
     * --chat-template: a file's text, or a template written on the command line, rendering chat requests
     * with the model's own special tokens; a name that is neither is refused before anything loads.
     */
    @Test
    void aChatTemplateFromTheCommandLineReplacesTheModels(@org.junit.jupiter.api.io.TempDir Path folder)
            throws Exception {
        String template = "{% for message in messages %}<{{ message.role }}>{{ message.content }}{{ eos_token }}"
                + "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
        Path file = folder.resolve("template.jinja");
        java.nio.file.Files.writeString(file, template);
        assertThat(parse("--chat-template", file.toString()).serving.chatTemplate())
                .isEqualTo(new ServedModel.ChatTemplateText(template, file.toString()));
        assertThat(parse("--chat-template", template).serving.chatTemplate())
                .isEqualTo(new ServedModel.ChatTemplateText(template, "--chat-template"));
        assertThat(parse().serving.chatTemplate()).isNull();
        assertThatThrownBy(() -> parse("--chat-template", folder.resolve("missing.jinja").toString()).serving.chatTemplate())
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("no file")
                .hasMessageContaining("missing.jinja");
        Failure missing = serveFailing("--port", "0", "--chat-template", folder.resolve("missing.jinja").toString());
        assertThat(missing.exit()).as("refused before the server listens").isNotZero();
        assertThat(missing.err() + missing.log()).contains("--chat-template: no file").doesNotContain("listening");

        try (ServedModel model = ServedModel.load(TestServer.DEMO_MODEL, "demo",
                loaded -> new CpuBackend(loaded.model(), new CpuOps(new Parallel(1))), loaded -> ContextParallelism.NONE,
                TestServer.ENGINE_OPTIONS, parse("--chat-template", file.toString()).serving.chatTemplate())) {
            assertThat(model.chatTemplate().render(List.of(ChatMessage.user("Hello")), true))
                    .isEqualTo("<user>Hello<|endoftext|><assistant>");
        }
        try (ServedModel model = ServedModel.load(TestServer.DEMO_MODEL, "demo",
                loaded -> new CpuBackend(loaded.model(), new CpuOps(new Parallel(1))), TestServer.ENGINE_OPTIONS)) {
            assertThat(model.chatTemplate().render(List.of(ChatMessage.user("Hello")), true))
                    .as("the model's own without the flag").isNotEqualTo("<user>Hello<|endoftext|><assistant>");
        }
    }

    @Test
    void theDevicesDefaultStepBudgetAppliesOnlyWithoutTheFlag() {
        assertThat(parse().serving.engineOptions(8192).maxBatchedTokens()).isEqualTo(8192);
        assertThat(parse("--max-batched-tokens", "256").serving.engineOptions(8192).maxBatchedTokens()).isEqualTo(256);
        // Every running request decodes each step: a default below --max-seqs is raised to it.
        assertThat(parse("--max-seqs", "300").serving.engineOptions(256).maxBatchedTokens()).isEqualTo(300);
        assertThat(parse().serving.engineOptions(8192)).isEqualTo(EngineOptions.DEFAULTS.withMaxBatchedTokens(8192));
    }

    @Test
    void theDevicesDefaultSnapshotSpacingAppliesOnlyWithoutTheFlag() {
        assertThat(parse().serving.engineOptions(8192, 64).snapshotIntervalBlocks()).isEqualTo(64);
        assertThat(parse("--snapshot-interval", "4").serving.engineOptions(8192, 64).snapshotIntervalBlocks()).isEqualTo(4);
        assertThat(parse("--snapshot-interval", "0").serving.engineOptions(8192, 64).snapshotIntervalBlocks()).isZero();
        assertThat(parse().serving.engineOptions().snapshotIntervalBlocks())
                .isEqualTo(EngineOptions.DEFAULTS.snapshotIntervalBlocks());
    }

    @Test
    void badEngineFlagsAreRefusedNamingTheFlag() {
        assertThatThrownBy(() -> parse("--kv-dtype", "f16").serving.engineOptions()).hasMessageContaining("--kv-dtype");
        assertThatThrownBy(() -> parse("--block-size", "3").serving.engineOptions()).hasMessageContaining("--block-size");
    }

    /** vllm serve's command line: the model in place of --model, and --trust-remote-code, which changes nothing. */
    @Test
    void theModelMayBeGivenAsVllmServeTakesIt() {
        ServeCommand command = parse("ibm-granite/granite-4.0-h-350m", "--trust-remote-code", "--port", "0");
        assertThat(command.model).isEqualTo("ibm-granite/granite-4.0-h-350m");
        assertThat(command.serving.modelOptions.trustRemoteCode).isTrue();
        assertThat(parse("--served-model-name", "a", "--served-model-name", "team/b").serving.servedModelNames)
                .containsExactly("a", "team/b");
        Failure twice = serveFailing("--port", "0", "other-org/other-model");
        assertThat(twice.exit()).isNotZero();
        assertThat(twice.err() + twice.log()).contains("the model is given twice: other-org/other-model and --model "
                + FIXTURE);
    }

    @Test
    void theParsersAreNamedAsVllmNamesThem() {
        assertThat(parse().serving.toolCallFormat()).isNull();
        assertThat(parse("--tool-call-parser", "hermes").serving.toolCallFormat()).isEqualTo(ToolCallFormat.HERMES);
        assertThat(parse("--enable-auto-tool-choice", "--tool-call-parser", "Hermes").serving.toolCallFormat())
                .isEqualTo(ToolCallFormat.HERMES);
        assertThatThrownBy(() -> parse("--tool-call-parser", "mistral").serving.toolCallFormat())
                .hasMessage("--tool-call-parser must be one of hermes, nemotron_json, qwen3_coder, got mistral");
        assertThat(parse("--tool-call-parser", "nemotron-json").serving.toolCallFormat())
                .isEqualTo(ToolCallFormat.NEMOTRON_JSON);
        assertThat(parse("--tool-call-parser", "qwen3_coder").serving.toolCallFormat())
                .isEqualTo(ToolCallFormat.QWEN3_CODER);
        assertThatThrownBy(() -> parse("--enable-auto-tool-choice").serving.toolCallFormat())
                .hasMessageContaining("--enable-auto-tool-choice needs --tool-call-parser");
        assertThat(parse("--reasoning-parser", "qwen3").serving.reasoningFormat()).isEqualTo(ReasoningFormat.THINK);
        assertThat(parse("--reasoning-parser", "nemotron_v3").serving.reasoningFormat())
                .isEqualTo(ReasoningFormat.THINK);
        assertThat(parse().serving.reasoningFormat()).isNull();
        assertThatThrownBy(() -> parse("--reasoning-parser", "granite").serving.reasoningFormat())
                .hasMessage("--reasoning-parser must be one of deepseek_r1, qwen3, nemotron_v3, nano_v3, got granite");
        Failure unknown = serveFailing("--port", "0", "--tool-call-parser", "mistral");
        assertThat(unknown.exit()).isNotZero();
        assertThat(unknown.err() + unknown.log())
                .contains("--tool-call-parser must be one of hermes, nemotron_json, qwen3_coder, got mistral");
    }

    @Test
    void theGenerationConfigFlagTakesVllmsValues() {
        assertThat(parse().serving.modelSamplingDefaults()).as("auto by default, as vLLM").isTrue();
        assertThat(parse("--generation-config", "auto").serving.modelSamplingDefaults()).isTrue();
        assertThat(parse("--generation-config", "vllm").serving.modelSamplingDefaults()).isFalse();
        assertThatThrownBy(() -> parse("--generation-config", "hf").serving.modelSamplingDefaults())
                .hasMessage("--generation-config must be auto or vllm, got \"hf\"");
    }

    @Test
    void theSchedulingPolicyIsVllms() {
        assertThat(parse().serving.engineOptions().priorityScheduling()).isFalse();
        assertThat(parse("--scheduling-policy", "priority").serving.engineOptions().priorityScheduling()).isTrue();
        assertThat(parse("--scheduling-policy", "fcfs").serving.engineOptions().priorityScheduling()).isFalse();
        assertThatThrownBy(() -> parse("--scheduling-policy", "lottery").serving.engineOptions())
                .hasMessage("--scheduling-policy must be fcfs or priority, got \"lottery\"");
    }

    @Test
    void theResponseStoreFlagTakesASize() {
        assertThat(parse().serving.responseStoreBytes()).isEqualTo(64L << 20).isEqualTo(ServerOptions.DEFAULT_RESPONSE_STORE_BYTES);
        assertThat(parse("--response-store", "0").serving.responseStoreBytes()).isZero();
        assertThat(parse("--response-store", "512k").serving.responseStoreBytes()).isEqualTo(512L << 10);
        assertThat(parse("--response-store", "2G").serving.responseStoreBytes()).isEqualTo(2L << 30);
        assertThat(parse("--response-store", "1000").serving.responseStoreBytes()).isEqualTo(1000);
        for (String bad : new String[] {"-1", "64MB", "M", "", "1.5G"}) {
            assertThatThrownBy(() -> parse("--response-store", bad).serving.responseStoreBytes())
                    .hasMessage("--response-store must be a size such as 64M, 1G or 0, got \"" + bad + "\"");
        }
    }

    @Test
    void helpListsEveryFlagWithItsDefault() {
        StringWriter out = new StringWriter();
        new CommandLine(new ServeCommand()).setOut(new PrintWriter(out)).execute("--help");
        String help = out.toString().replaceAll("\\s+", " ");
        for (String flag : new String[] {"--model", "--threads", "--host", "--port", "--api-key", "--served-model-name",
            "--max-body-bytes", "--shutdown-timeout", "--sse-keep-alive", "--block-size", "--kv-dtype", "--cache-memory",
            "--max-seqs", "--max-batched-tokens", "--max-waiting", "--[no-]prefix-caching", "--snapshot-interval",
            "--tool-call-parser", "--enable-auto-tool-choice", "--reasoning-parser", "--chat-template", "--max-num-seqs",
            "--max-num-batched-tokens", "--generation-config", "--response-store", "--scheduling-policy"}) {
            assertThat(help).contains(flag);
        }
        assertThat(help).contains("(default " + EngineOptions.DEFAULTS.maxBatchedTokens() + " on the CPU;")
                .contains("(default " + EngineOptions.DEFAULTS.maxWaiting() + ")")
                .contains("(default " + EngineOptions.DEFAULTS.blockSize() + ")");
    }

    /**
     * Jetty reports every failure to bind as "Failed to bind", which Javalin logged as an error and
     * turned into "Port already in use" even for a host that does not resolve: serve says which it is,
     * in one line, without Javalin's log.
     */
    @Test
    @Timeout(60)
    void anAddressItCannotListenOnIsToldWithItsCause() throws Exception {
        Failure unknownHost = serveFailing("--host", "no-such-host.invalid", "--port", "0");
        assertThat(unknownHost.exit()).isEqualTo(1);
        assertThat(unknownHost.err()).isEqualTo("coil: cannot listen on no-such-host.invalid:0: unknown host"
                + System.lineSeparator());
        assertThat(unknownHost.log()).doesNotContain("Javalin");

        // 192.0.2.1 is TEST-NET-1 (RFC 5737): documentation only, no machine's address.
        Failure otherMachine = serveFailing("--host", "192.0.2.1", "--port", "0");
        assertThat(otherMachine.exit()).isEqualTo(1);
        assertThat(otherMachine.err()).startsWith("coil: cannot listen on 192.0.2.1:0: ")
                .doesNotContain("in use").doesNotContain("unknown host");
        assertThat(otherMachine.err().lines()).hasSize(1);

        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            Failure inUse = serveFailing("--host", "127.0.0.1", "--port", String.valueOf(taken.getLocalPort()));
            assertThat(inUse.exit()).isEqualTo(1);
            assertThat(inUse.err()).startsWith("coil: cannot listen on 127.0.0.1:" + taken.getLocalPort() + ": ")
                    .contains("in use");
            assertThat(inUse.err().lines()).hasSize(1);
            assertThat(inUse.log()).doesNotContain("Javalin");
        }
    }
}
