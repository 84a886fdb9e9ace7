package dev.coil.server.cli;

import dev.coil.engine.bench.CpuBenchmark;
import dev.coil.engine.bench.RandomCheckpoint;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.load.DType;
import dev.coil.engine.runner.LoadedModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * CPU prefill and decode tokens/s for a random GraniteMoeHybrid of the ~300M shape the GPU anchors
 * use (or any --model), with the decode floor beside it.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "CPU prefill and decode tokens/s at 512- and 8k-token prompts, next to the weight-read floor.")
public final class BenchCommand implements Callable<Integer> {

    @Option(names = "--model", paramLabel = "DIR",
            description = "Model folder to benchmark (default: a random bf16 GraniteMoeHybrid of ~304M parameters, "
                    + "written once to --cache-dir).")
    Path model;

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "Where the random benchmark model is kept "
            + "(default: ~/.cache/coil/bench-granite-300m).")
    Path cacheDir;

    @Option(names = "--prompt-lengths", split = ",", defaultValue = "512,8192", description = "Prompt lengths (default ${DEFAULT-VALUE}).")
    int[] promptLengths;

    @Option(names = "--decode-tokens", defaultValue = "64", description = "Tokens decoded after each prompt (default ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--threads", description = "CPU threads (default: all cores).")
    Integer threads;

    @Override
    public Integer call() throws Exception {
        Path folder = model != null ? model : randomModel();
        int workers = threads != null ? threads : Runtime.getRuntime().availableProcessors();
        try (LoadedModel loaded = LoadedModel.load(folder)) {
            CpuBenchmark.Result result = CpuBenchmark.run(loaded, new CpuOps(new Parallel(workers)), promptLengths,
                    decodeTokens, message -> System.err.println("bench: " + message));
            print(folder, result);
        }
        return 0;
    }

    private Path randomModel() throws Exception {
        Path folder = cacheDir != null ? cacheDir
                : Path.of(System.getProperty("user.home"), ".cache", "coil", "bench-granite-300m");
        if (!Files.exists(folder.resolve("model.safetensors"))) {
            System.err.println("bench: writing a random bf16 GraniteMoeHybrid (~304M parameters) to " + folder);
            RandomCheckpoint.write(folder, RandomCheckpoint.Shape.granite300m(), DType.BF16, 42);
        }
        return folder;
    }

    private static void print(Path folder, CpuBenchmark.Result result) {
        System.out.printf("model: %s (%s, %.1fM parameters); threads: %d%n", folder, result.architecture(),
                result.parameters() / 1e6, result.threads());
        System.out.printf("weights read per decoded token: %.1f MB (floor = these bytes / memory read bandwidth,"
                + " measured before each decode)%n", result.weightBytesPerToken() / 1e6);
        System.out.println("| prompt tokens | prefill tokens/s | decode tokens/s | decode ms/token | bandwidth GB/s "
                + "| floor ms/token | floor / measured |");
        System.out.println("|---|---|---|---|---|---|---|");
        for (CpuBenchmark.Row row : result.rows()) {
            System.out.printf("| %d | %.1f | %.2f | %.2f | %.1f | %.2f | %.0f%% |%n", row.promptTokens(),
                    row.prefillTokensPerSecond(), row.decodeTokensPerSecond(), row.decodeMillisPerToken(),
                    row.bandwidthGBps(), row.floorMillisPerToken(), 100 * row.fractionOfFloor());
        }
    }
}
