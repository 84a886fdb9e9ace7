package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.bench.ServingBenchmark;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.model.Granite300mCheckpoint;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Prints the serving engine's figures on the GPU for the 300M random shape (bf16): generated
 * tokens/s at 1 to 64 concurrent requests, and batch-1 decode ms/token beside the floor of reading
 * every weight once at 3.0 TB/s, with and without CUDA graphs. Nothing is asserted on time.
 */
@GpuTest
class GpuServingTimingTest {

    private static final double BANDWIDTH = 3.0e12;

    private static final SamplingParams SAMPLED = SamplingParams.greedy().withTemperature(0.8).withTopP(0.95);
    private static final SamplingParams PENALISED = SAMPLED.withRepetitionPenalty(1.2).withPresencePenalty(0.3)
            .withFrequencyPenalty(0.2);

    /**
     * One benchmark run: the concurrency levels, how tokens are chosen, whether decode replays CUDA
     * graphs, the system properties switched off for it, and the most rows the few-rows products
     * take (0: the default). alone: one sequence at a time, so every warm-up step is batch 1 too.
     */
    private record Run(String mode, int[] levels, SamplingParams sampling, boolean graphs, List<String> switchOff,
            int gemvRows, boolean alone, int logprobs) {

        Run(String mode, int[] levels, SamplingParams sampling, boolean graphs, List<String> switchOff, int gemvRows,
                boolean alone) {
            this(mode, levels, sampling, graphs, switchOff, gemvRows, alone, -1);
        }

        static Run greedy(String mode, int... levels) {
            return new Run(mode, levels, SamplingParams.greedy(), true, List.of(), 0, false);
        }

        Run without(String property) {
            return new Run(mode, levels, sampling, graphs, List.of(property), gemvRows, alone);
        }
    }

    /** Batch 1 alone first, for its host profile; then every level; then the comparisons. */
    private static final List<Run> RUNS = List.of(
            new Run("greedy", new int[] {1}, SamplingParams.greedy(), true, List.of(), 0, true),
            Run.greedy("greedy", 1, 2, 4, 16, 64),
            new Run("greedy", new int[] {1, 64}, SamplingParams.greedy(), false, List.of(), 0, false),
            new Run("sampled on the device", new int[] {1, 64}, SAMPLED, true, List.of(), 0, false),
            new Run("sampled on the host", new int[] {1, 64}, SAMPLED, true, List.of(GpuBackend.SAMPLING_PROPERTY), 0,
                    false),
            Run.greedy("greedy, products through cuBLAS", 1, 2, 4).without(GemvKernel.PROPERTY),
            Run.greedy("greedy, products without programmatic launch", 1, 2).without(Kernel.PROGRAMMATIC_PROPERTY),
            new Run("greedy, few-rows products up to 8 rows", new int[] {2, 4}, SamplingParams.greedy(), true,
                    List.of(), GemvKernel.KERNEL_ROWS, false),
            Run.greedy("greedy, each step read before the next is queued", 1, 64)
                    .without(GpuBackend.RUN_AHEAD_PROPERTY),
            new Run("greedy, each step read before the next is queued", new int[] {1}, SamplingParams.greedy(), true,
                    List.of(GpuBackend.RUN_AHEAD_PROPERTY), 0, true),
            new Run("sampled on the device", new int[] {1}, SAMPLED, true, List.of(), 0, true),
            new Run("greedy with 5 logprobs, on the device", new int[] {1, 64}, SamplingParams.greedy(), true,
                    List.of(), 0, false, 5),
            new Run("greedy with 5 logprobs, logits to the host", new int[] {1, 64}, SamplingParams.greedy(), true,
                    List.of(GpuBackend.SAMPLING_PROPERTY), 0, false, 5),
            new Run("sampled with 5 logprobs, on the device", new int[] {1, 64}, SAMPLED, true, List.of(), 0, false,
                    5),
            // Penalties: each draw depends on the token before, so the step is queued ahead and drawn later.
            new Run("sampled with penalties, on the device", new int[] {1, 64}, PENALISED, true, List.of(), 0, false),
            new Run("sampled with penalties, each step read before its draw", new int[] {1, 64}, PENALISED, true,
                    List.of(GpuBackend.DRAW_LATER_PROPERTY), 0, false));

    /** The run's concurrency levels, or those -Dcoil.bench.levels=4,16 names (to trace one level). */
    private static int[] levels(Run run) {
        String levels = System.getProperty("coil.bench.levels");
        return levels == null ? run.levels()
                : java.util.Arrays.stream(levels.split(",")).map(String::trim).mapToInt(Integer::parseInt).toArray();
    }

    /** Whether run `index` is among those -Dcoil.bench.runs=0,3 names (every run when unset), for profiling one. */
    private static boolean selected(int index) {
        String runs = System.getProperty("coil.bench.runs");
        return runs == null || java.util.Arrays.stream(runs.split(",")).map(String::trim).anyMatch(
                run -> run.equals(String.valueOf(index)));
    }

    @Test
    void printsThroughputAndBatchOneDecodeOfThe300mShape() throws Exception {
        CudaDevice device = GpuFixture.device();
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel loaded = LoadedModel.load(checkpoint.folder())) {
            long weightBytes = loaded.checkpoint().parameterCount() * 2
                    - (long) loaded.config().vocabSize() * loaded.config().hiddenSize() * 2
                    * (loaded.config().lmHeadName() == null ? 0 : 1);
            double floorMs = weightBytes / BANDWIDTH * 1e3;
            // -Dcoil.bench.maxBatchedTokens=N to compare step budgets (the server's default on an H100 is 8192).
            // With the prefix cache on, snapshots spaced as the server spaces them on a GPU.
            EngineOptions options = EngineOptions.DEFAULTS.withMaxSequences(64)
                    .withMaxBatchedTokens(Integer.getInteger("coil.bench.maxBatchedTokens", 2048)).withCacheMemory("8G")
                    .withSnapshotIntervalBlocks(Backends.gpuSnapshotIntervalBlocks(EngineOptions.DEFAULTS.blockSize()));
            System.setProperty(GpuBackend.STEP_TIMING_PROPERTY, "true");
            for (int index = 0; index < RUNS.size(); index++) {
                if (!selected(index)) {
                    continue;
                }
                Run run = RUNS.get(index);
                run.switchOff().forEach(property -> System.setProperty(property, "false"));
                if (run.gemvRows() > 0) {
                    System.setProperty(GemvKernel.ROWS_PROPERTY, String.valueOf(run.gemvRows()));
                }
                EngineOptions runOptions = run.alone() ? options.withMaxSequences(1) : options;
                List<GpuBackend> opened = new java.util.ArrayList<>();
                List<ServingBenchmark.ThroughputRow> rows;
                try {
                    rows = ServingBenchmark.throughput(loaded, () -> {
                        GpuBackend backend = GpuBackend.open(loaded, 0, run.graphs());
                        opened.add(backend);
                        return backend;
                    }, runOptions, levels(run), 128, 128, run.sampling(), run.logprobs(), message -> { });
                } finally {
                    run.switchOff().forEach(System::clearProperty);
                    System.clearProperty(GemvKernel.ROWS_PROPERTY);
                }
                String graphs = run.graphs() ? "on" : "off";
                System.out.printf("[gpu-serving] run %d, graphs %s, %s: %s; %d graph replays%n", index, graphs,
                        run.mode(), opened.get(0).stepProfile(), opened.get(0).graphReplays());
                if (opened.get(0).stepTrace() != null) {
                    System.out.printf("[gpu-serving] run %d, per kernel of a replayed step, from its wait to the next"
                            + " one's (median):%n%s", index, opened.get(0).stepTrace());
                }
                for (ServingBenchmark.ThroughputRow row : rows) {
                    System.out.printf("[gpu-serving] %s, granite300m bf16, graphs %s, %s: %d concurrent, prompt %d,"
                            + " %d generated each: %.1f generated tokens/s, mean TTFT %.1f ms, mean decode %.1f"
                            + " tokens/s per request = %.3f ms/token (floor %.3f ms = %.0f MB / 3.0 TB/s)%n",
                            device.description(), graphs, run.mode(), row.concurrency(), row.promptTokens(),
                            row.generatedPerRequest(), row.generatedTokensPerSecond(), row.meanTimeToFirstTokenMillis(),
                            row.meanDecodeTokensPerSecond(), 1000 / row.meanDecodeTokensPerSecond(), floorMs,
                            weightBytes / 1e6);
                    assertThat(row.generatedPerRequest()).as("tokens each request generated").isPositive();
                }
            }
        } finally {
            System.clearProperty(GpuBackend.STEP_TIMING_PROPERTY);
        }
    }

    /**
     * What a thinking budget costs a decode step while it is not spent (a budget no request reaches,
     * the prompt opening the block): the 300M shape with the demo model's tokenizer, so that every run
     * decodes text, greedy and sampled, with and without the budget, alternately in one process.
     */
    @Test
    void printsWhatAThinkingBudgetCosts() throws Exception {
        CudaDevice device = GpuFixture.device();
        Path demo = java.nio.file.Files.isDirectory(Path.of("models", "coil-demo")) ? Path.of("models", "coil-demo")
                : Path.of("..", "models", "coil-demo");
        ThinkingBudget unspent = new ThinkingBudget(1_000_000, "<think>", "</think>", true);
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write()) {
            for (String file : List.of("tokenizer.json", "tokenizer_config.json")) {
                java.nio.file.Files.copy(demo.resolve(file), checkpoint.folder().resolve(file));
            }
            try (LoadedModel loaded = LoadedModel.load(checkpoint.folder())) {
                EngineOptions options = EngineOptions.DEFAULTS.withMaxSequences(64).withMaxBatchedTokens(2048)
                        .withCacheMemory("8G");
                for (int round = 0; round < 2; round++) {
                    for (SamplingParams sampling : List.of(SamplingParams.greedy(), SamplingParams.greedy()
                            .withThinkingBudget(unspent), SAMPLED, SAMPLED.withThinkingBudget(unspent))) {
                        List<ServingBenchmark.ThroughputRow> rows = ServingBenchmark.throughput(loaded,
                                () -> GpuBackend.open(loaded, 0, true), options, new int[] {1, 64}, 128, 128, sampling,
                                -1, message -> { });
                        for (ServingBenchmark.ThroughputRow row : rows) {
                            System.out.printf("[gpu-thinking] %s, granite300m bf16 with a tokenizer, round %d, %s%s: "
                                    + "%d concurrent, %d generated each: %.1f generated tokens/s, %.3f ms/token%n",
                                    device.description(), round, sampling.isGreedy() ? "greedy" : "sampled",
                                    sampling.thinkingBudget() == null ? "" : ", an unspent thinking budget",
                                    row.concurrency(), row.generatedPerRequest(), row.generatedTokensPerSecond(),
                                    1000 / row.meanDecodeTokensPerSecond());
                            assertThat(row.generatedPerRequest()).isPositive();
                        }
                    }
                }
            }
        }
    }
}
