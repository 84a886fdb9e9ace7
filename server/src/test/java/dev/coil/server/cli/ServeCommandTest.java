package dev.coil.server.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.load.DType;
import dev.coil.engine.runner.EngineOptions;
import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** serve's flags: the engine's own defaults when absent, each flag reaching its EngineOptions field. */
class ServeCommandTest {

    private static ServeCommand parse(String... args) {
        ServeCommand command = new ServeCommand();
        new CommandLine(command).parseArgs(args);
        return command;
    }

    @Test
    void withoutFlagsTheEngineDefaultsApply() {
        ServeCommand command = parse();
        assertThat(command.engineOptions()).isEqualTo(EngineOptions.DEFAULTS);
        assertThat(command.host).isEqualTo("127.0.0.1");
        assertThat(command.port).isEqualTo(8080);
        assertThat(command.maxBodyBytes).isEqualTo(2L * 1024 * 1024);
        assertThat(command.apiKey).isEqualTo(System.getenv("COIL_API_KEY"));
        assertThat(parse("--api-key", "k").apiKey).isEqualTo("k");
    }

    @Test
    void engineFlagsReachTheEngineOptions() {
        EngineOptions options = parse("--block-size", "32", "--kv-dtype", "f32", "--cache-memory", "1G",
                "--max-seqs", "8", "--max-batched-tokens", "256", "--max-waiting", "3", "--no-prefix-caching",
                "--snapshot-interval", "4").engineOptions();
        assertThat(options).isEqualTo(new EngineOptions(32, DType.F32, "1G", 8, 256, 3, false, 4));
    }

    @Test
    void theDevicesDefaultStepBudgetAppliesOnlyWithoutTheFlag() {
        assertThat(parse().engineOptions(8192).maxBatchedTokens()).isEqualTo(8192);
        assertThat(parse("--max-batched-tokens", "256").engineOptions(8192).maxBatchedTokens()).isEqualTo(256);
        // Every running request decodes each step: a default below --max-seqs is raised to it.
        assertThat(parse("--max-seqs", "300").engineOptions(256).maxBatchedTokens()).isEqualTo(300);
        assertThat(parse().engineOptions(8192)).isEqualTo(EngineOptions.DEFAULTS.withMaxBatchedTokens(8192));
    }

    @Test
    void theDevicesDefaultSnapshotSpacingAppliesOnlyWithoutTheFlag() {
        assertThat(parse().engineOptions(8192, 64).snapshotIntervalBlocks()).isEqualTo(64);
        assertThat(parse("--snapshot-interval", "4").engineOptions(8192, 64).snapshotIntervalBlocks()).isEqualTo(4);
        assertThat(parse("--snapshot-interval", "0").engineOptions(8192, 64).snapshotIntervalBlocks()).isZero();
        assertThat(parse().engineOptions().snapshotIntervalBlocks())
                .isEqualTo(EngineOptions.DEFAULTS.snapshotIntervalBlocks());
    }

    @Test
    void badEngineFlagsAreRefusedNamingTheFlag() {
        assertThatThrownBy(() -> parse("--kv-dtype", "f16").engineOptions()).hasMessageContaining("--kv-dtype");
        assertThatThrownBy(() -> parse("--block-size", "3").engineOptions()).hasMessageContaining("--block-size");
    }

    @Test
    void helpListsEveryFlagWithItsDefault() {
        StringWriter out = new StringWriter();
        new CommandLine(new ServeCommand()).setOut(new PrintWriter(out)).execute("--help");
        String help = out.toString().replaceAll("\\s+", " ");
        for (String flag : new String[] {"--model", "--threads", "--host", "--port", "--api-key", "--served-model-name",
            "--max-body-bytes", "--shutdown-timeout", "--sse-keep-alive", "--block-size", "--kv-dtype", "--cache-memory",
            "--max-seqs", "--max-batched-tokens", "--max-waiting", "--[no-]prefix-caching", "--snapshot-interval"}) {
            assertThat(help).contains(flag);
        }
        assertThat(help).contains("(default " + EngineOptions.DEFAULTS.maxBatchedTokens() + " on the CPU;")
                .contains("(default " + EngineOptions.DEFAULTS.maxWaiting() + ")")
                .contains("(default " + EngineOptions.DEFAULTS.blockSize() + ")");
    }
}
