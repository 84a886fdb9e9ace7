package dev.coil.server.cli;

import dev.coil.engine.bench.CpuBenchmark;
import dev.coil.engine.bench.RandomCheckpoint;
import dev.coil.engine.bench.ServingBenchmark;
import dev.coil.engine.bench.StructuredOutputBenchmark;
import dev.coil.engine.runner.Backend;
import dev.coil.engine.runner.Backends;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.EngineOptions;
import java.util.function.Supplier;
import java.util.List;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.MemoryBandwidth;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.load.DType;
import dev.coil.engine.load.WeightStorage;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.ScanPrecision;
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
        description = "CPU prefill and decode tokens/s at 512- and 8k-token prompts, next to the weight-read floor; "
                + "with --serving, the serving engine's throughput under concurrency and its prefix cache; "
                + "with --structured, what structured outputs cost a decode step.")
public final class BenchCommand implements Callable<Integer> {

    @Option(names = "--model", paramLabel = "DIR",
            description = "Model folder to benchmark (default: a random bf16 GraniteMoeHybrid of ~304M parameters, "
                    + "written once to --cache-dir).")
    Path model;

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "Where the random benchmark model is kept;"
            + " by default ~/.cache/coil/bench-granite-300m.")
    Path cacheDir;

    @Option(names = "--prompt-lengths", paramLabel = "LENGTH", split = ",", defaultValue = "512,8192",
            description = "Prompt lengths (default ${DEFAULT-VALUE}).")
    int[] promptLengths;

    @Option(names = "--decode-tokens", paramLabel = "N", defaultValue = "64",
            description = "Tokens decoded after each prompt (default ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--threads", paramLabel = "N", description = "CPU threads (default: all cores).")
    Integer threads;

    @Option(names = "--devices", paramLabel = "LIST", defaultValue = "cpu",
            description = "With --serving: where the engine runs: " + Devices.HELP + " (default ${DEFAULT-VALUE};"
                    + " the plain bench runs on the CPU).")
    String devices;

    @Option(names = "--ssd-precision", paramLabel = "P", defaultValue = "f32",
            description = "With --serving on a GPU: the SSD scan's products, f32 or tf32, as on serve"
                    + " (default ${DEFAULT-VALUE}).")
    String ssdPrecision;

    @Option(names = "--snapshot-interval", paramLabel = "BLOCKS",
            description = "With --serving: the Mamba state snapshots during prefill, as on serve (default: serve's"
                    + " for the devices).")
    Integer snapshotInterval;

    @Option(names = "--batch-invariant", description = "With --serving: the throughput runs as serve"
            + " --batch-invariant serves (each request's tokens independent of the others', bit for bit).")
    boolean batchInvariant;

    @Option(names = "--serving", description = "Benchmark the serving engine instead: generated tokens/s at each "
            + "--concurrency, and the prefix cache on a replayed chat (default model: the bundled demo model).")
    boolean serving;

    @Option(names = "--structured", description = "Benchmark structured outputs instead: decode ms/token, one "
            + "request at a time, with no grammar, a JSON schema, a string held to a pattern and a regex (default "
            + "model: the bundled demo model, whose tokenizer the grammars need).")
    boolean structured;

    @Option(names = "--concurrency", paramLabel = "N", split = ",", defaultValue = "1,4,16,64",
            description = "With --serving: requests in flight at once (default ${DEFAULT-VALUE}).")
    int[] concurrency;

    @Option(names = "--prompt-tokens", paramLabel = "N", defaultValue = "128",
            description = "With --serving: prompt tokens per request (default ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--max-tokens", paramLabel = "N", defaultValue = "64",
            description = "With --serving: tokens generated per request (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--chat-turns", paramLabel = "N", defaultValue = "10",
            description = "With --serving: turns of the replayed chat (default ${DEFAULT-VALUE}).")
    int chatTurns;

    @Option(names = "--mmap",
            description = "On the CPU, read the weights in place from the memory-mapped files, as serve --mmap does"
                    + " (default: a copy in memory on huge pages).")
    boolean mmap;

    @Option(names = "--compare-mmap",
            description = "Decode greedily from the weights copied into memory and from the memory-mapped files in"
                    + " one process, alternating rounds of 16 tokens (--decode-tokens each), and print each one's"
                    + " median ms/token beside the floor: on a machine whose speed drifts, separate runs cannot"
                    + " compare them.")
    boolean compareMmap;

    @Override
    public Integer call() throws Exception {
        checkRanges();
        int workers = ModelOptions.threads(threads);
        if (serving || structured) {
            if (serving && structured) {
                throw new IllegalArgumentException("give --serving or --structured, not both");
            }
            return serving(workers);
        }
        if (!Devices.parse(devices).isCpu()) {
            throw new IllegalArgumentException("--devices " + devices + " applies to bench --serving; the plain bench"
                    + " measures the CPU's prefill and decode (GPU figures: bench --serving --devices cuda:0)");
        }
        Path folder = model != null ? model : randomModel();
        if (compareMmap) {
            return compareStorages(folder, workers);
        }
        try (LoadedModel loaded = LoadedModel.load(folder, Backends.weightStorage(Devices.cpu(1), mmap))) {
            CpuBenchmark.Result result = CpuBenchmark.run(loaded, new CpuOps(new Parallel(workers)), promptLengths,
                    decodeTokens, message -> System.err.println("bench: " + message));
            print(folder, result);
        }
        return 0;
    }

    /**
     * Refuses a count the benchmark cannot measure with (an empty prompt, no decode step, no request
     * in flight), before any model is written or loaded (--threads is checked where it is read, just
     * after). Every count is checked, whether or not
     * --serving uses it: a bad value is a typo either way.
     */
    private void checkRanges() {
        for (int length : promptLengths) {
            ModelOptions.atLeast("--prompt-lengths", length, 1);
        }
        ModelOptions.atLeast("--decode-tokens", decodeTokens, 1);
        for (int requests : concurrency) {
            ModelOptions.atLeast("--concurrency", requests, 1);
        }
        ModelOptions.atLeast("--prompt-tokens", promptTokens, 1);
        ModelOptions.atLeast("--max-tokens", maxTokens, 1);
        ModelOptions.atLeast("--chat-turns", chatTurns, 1);
        if (snapshotInterval != null) {
            ModelOptions.atLeast("--snapshot-interval", snapshotInterval, 0);
        }
    }

    /**
     * " (from reply token i of n, where the two most likely tokens were a and b apart in logprob
     * with and without the cache)": a greedy pick flips where that margin is within rounding.
     */
    static String partedWhere(ServingBenchmark.ChatRow cached, ServingBenchmark.ChatRow uncached, int parted) {
        return String.format(" (from reply token %d of %d, where the two most likely tokens were %s and %s apart in"
                + " logprob with the cache and without it)", parted + 1, cached.replyTokens().size(),
                margin(cached, parted), margin(uncached, parted));
    }

    private static String margin(ServingBenchmark.ChatRow row, int index) {
        return index < row.replyMargins().size() ? String.format("%.2g", row.replyMargins().get(index)) : "n/a";
    }

    private int serving(int workers) throws Exception {
        ModelOptions options = new ModelOptions();
        options.model = model == null ? null : model.toString();
        Path folder = options.folder();
        int maxConcurrency = java.util.Arrays.stream(concurrency).max().orElse(1);
        EngineOptions engineOptions = EngineOptions.DEFAULTS.withMaxSequences(Math.max(1, maxConcurrency))
                .withMaxBatchedTokens(Math.max(2048, maxConcurrency));
        Devices resolved = Backends.resolve(Devices.parse(devices));
        engineOptions = engineOptions.withSnapshotIntervalBlocks(snapshotInterval != null ? snapshotInterval
                : Backends.defaultSnapshotIntervalBlocks(resolved, engineOptions.blockSize()));
        ScanPrecision precision = ScanPrecision.parse(ssdPrecision);
        try (LoadedModel loaded = LoadedModel.load(folder, Backends.weightStorage(resolved, mmap))) {
            Supplier<Backend> ops = () -> Backends.open(resolved, loaded, workers, precision);
            Supplier<Backend> throughputOps = () -> Backends.open(resolved, loaded, workers, precision, batchInvariant);
            System.out.printf("model: %s (%s, %.1fM parameters); devices: %s; threads: %d; KV cache %s; SSD scan %s%n",
                    folder, loaded.config().architecture(), loaded.checkpoint().parameterCount() / 1e6, resolved,
                    workers, engineOptions.kvDtype(), resolved.isCuda() ? precision : ScanPrecision.F32);
            if (structured) {
                return structured(loaded, ops, engineOptions);
            }
            List<ServingBenchmark.ThroughputRow> rows = ServingBenchmark.throughput(loaded, throughputOps,
                    engineOptions.withBatchInvariant(batchInvariant), concurrency, promptTokens, maxTokens,
                    message -> System.err.println("bench: " + message));
            if (batchInvariant) {
                System.out.println("batch-invariant throughput (the prefix cache replay below runs without the mode)");
            }
            System.out.println("| concurrent requests | prompt tokens | generated each | wall s | generated tokens/s "
                    + "| mean TTFT ms | mean decode tokens/s per request |");
            System.out.println("|---|---|---|---|---|---|---|");
            for (ServingBenchmark.ThroughputRow row : rows) {
                System.out.printf("| %d | %d | %d | %.2f | %.1f | %.0f | %.1f |%n", row.concurrency(),
                        row.promptTokens(), row.generatedPerRequest(), row.seconds(), row.generatedTokensPerSecond(),
                        row.meanTimeToFirstTokenMillis(), row.meanDecodeTokensPerSecond());
            }
            // coil serve warms its engine up before it answers (Engine.warmUp); the replay's engines do too.
            List<ServingBenchmark.ChatRow> chat = ServingBenchmark.chat(loaded, ops, engineOptions, chatTurns, 200,
                    maxTokens, resolved.isCuda(), message -> System.err.println("bench: " + message));
            System.out.println();
            System.out.println("| prefix cache | turns | prompt tokens | served from cache | hit rate | wall s "
                    + "| mean TTFT ms |");
            System.out.println("|---|---|---|---|---|---|---|");
            for (ServingBenchmark.ChatRow row : chat) {
                System.out.printf("| %s | %d | %d | %d | %.0f%% | %.2f | %.0f |%n", row.prefixCaching() ? "on" : "off",
                        row.turns(), row.promptTokens(), row.cachedTokens(), 100 * row.hitRate(), row.seconds(),
                        row.meanTimeToFirstTokenMillis());
            }
            int parted = ServingBenchmark.firstDifference(chat.get(0), chat.get(1));
            System.out.printf("time saved by the prefix cache: %.0f%%; replies identical with and without it: %s%n",
                    100 * (1 - chat.get(0).seconds() / chat.get(1).seconds()), parted < 0 ? "true" : "false"
                            + partedWhere(chat.get(0), chat.get(1), parted));
        }
        return 0;
    }

    /** Decode ms/token one request at a time, with each kind of grammar and without one. */
    private int structured(LoadedModel loaded, Supplier<Backend> ops, EngineOptions engineOptions) throws Exception {
        List<StructuredOutputBenchmark.Row> rows = StructuredOutputBenchmark.run(loaded, ops, engineOptions, 8,
                promptTokens, maxTokens, message -> System.err.println("bench: " + message));
        StructuredOutputBenchmark.table(rows).forEach(System.out::println);
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

    private int compareStorages(Path folder, int workers) {
        List<WeightStorage> storages = List.of(WeightStorage.MEMORY, WeightStorage.MAPPED);
        try (LoadedModel inMemory = LoadedModel.load(folder, WeightStorage.MEMORY);
                LoadedModel mapped = LoadedModel.load(folder, WeightStorage.MAPPED);
                MemoryBandwidth.Meter meter = new MemoryBandwidth.Meter()) {
            CpuOps ops = new CpuOps(new Parallel(workers));
            int tokensPerRound = Math.min(CpuBenchmark.ROUND_TOKENS, decodeTokens);
            int rounds = Math.max(1, decodeTokens / tokensPerRound);
            List<CpuBenchmark.StorageRow> rows = new java.util.ArrayList<>();
            for (int length : promptLengths) {
                rows.addAll(CpuBenchmark.compareStorages(List.of(inMemory, mapped), storages, ops, meter, length,
                        rounds, tokensPerRound, message -> System.err.println("bench: " + message)));
            }
            System.out.printf("model: %s (%s, %.1fM parameters); threads: %d; KV cache %s%n", folder,
                    inMemory.config().architecture(), inMemory.checkpoint().parameterCount() / 1e6, workers,
                    CpuBenchmark.KV_DTYPE);
            System.out.println("| weights | prompt tokens | rounds x tokens | decode ms/token (median) | fastest round"
                    + " | bandwidth GB/s | floor ms/token | floor / measured |");
            System.out.println("|---|---|---|---|---|---|---|---|");
            for (int i = 0; i < rows.size(); i++) {
                CpuBenchmark.StorageRow row = rows.get(i);
                System.out.printf("| %s | %d | %d x %d | %.2f | %.2f | %.1f | %.2f | %.0f%% |%n",
                        row.storage() == WeightStorage.MEMORY ? "in memory" : "mapped (--mmap)",
                        promptLengths[i / storages.size()], row.rounds(), row.tokensPerRound(),
                        row.medianMillisPerToken(), row.fastestMillisPerToken(), row.bandwidthGBps(),
                        row.floorMillisPerToken(), 100 * row.fractionOfFloor());
            }
        }
        return 0;
    }

    private static void print(Path folder, CpuBenchmark.Result result) {
        System.out.printf("model: %s (%s, %.1fM parameters); threads: %d; KV cache %s%n", folder,
                result.architecture(), result.parameters() / 1e6, result.threads(), CpuBenchmark.KV_DTYPE);
        System.out.printf("weights read per decoded token: %.1f MB (floor = these bytes / memory read bandwidth,"
                + " measured before each %d decoded tokens; bandwidth: the median; floor / measured: the median of"
                + " each round's)%n", result.weightBytesPerToken() / 1e6, CpuBenchmark.ROUND_TOKENS);
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
