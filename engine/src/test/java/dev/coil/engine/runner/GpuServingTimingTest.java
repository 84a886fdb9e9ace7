package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.bench.RandomCheckpoint;
import dev.coil.engine.bench.ServingBenchmark;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.load.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Prints the serving engine's figures on the GPU for the 300M random shape (bf16): generated
 * tokens/s at 1 to 64 concurrent requests, and batch-1 decode ms/token beside the floor of reading
 * every weight once at 3.0 TB/s, with and without CUDA graphs. Nothing is asserted on time.
 */
@GpuTest
class GpuServingTimingTest {

    private static final double BANDWIDTH = 3.0e12;

    @Test
    void printsThroughputAndBatchOneDecodeOfThe300mShape() throws Exception {
        CudaDevice device = GpuFixture.device();
        Path folder = Files.createTempDirectory(Path.of("/tmp"), "coil-granite300m");
        RandomCheckpoint.write(folder, RandomCheckpoint.Shape.granite300m(), DType.BF16, 42);
        try (LoadedModel loaded = LoadedModel.load(folder)) {
            long weightBytes = loaded.checkpoint().parameterCount() * 2
                    - (long) loaded.config().vocabSize() * loaded.config().hiddenSize() * 2
                    * (loaded.config().lmHeadName() == null ? 0 : 1);
            double floorMs = weightBytes / BANDWIDTH * 1e3;
            int[] concurrencies = {1, 2, 4, 16, 64};
            EngineOptions options = EngineOptions.DEFAULTS.withMaxSequences(64).withMaxBatchedTokens(2048)
                    .withCacheMemory("8G");
            // Batch 1 alone first (one sequence, so every warm-up step is batch 1 too), for its host profile.
            // Runs: 0 batch 1 alone; 1 greedy at every level; 2 without graphs; 3 and 4 sampled
            // (temperature 0.8, top-p 0.95) with tokens drawn on the device, then on the host.
            SamplingParams sampled = SamplingParams.greedy().withTemperature(0.8).withTopP(0.95);
            // 5 and 6: greedy at 1 and 4 requests with every product through cuBLAS, then with the
            // few-rows products launched the plain way (no programmatic dependent launch).
            // 7: greedy at 2 and 4 requests with the few-rows products taking up to 8 rows.
            for (int run = 0; run < 8; run++) {
                boolean graphs = run != 2;
                int[] levels = run == 0 ? new int[] {1} : run == 1 ? concurrencies : run == 5 ? new int[] {1, 2, 4}
                        : run == 6 ? new int[] {1, 2} : run == 7 ? new int[] {2, 4} : new int[] {1, 64};
                SamplingParams sampling = run == 3 || run == 4 ? sampled : SamplingParams.greedy();
                if (run == 4) {
                    System.setProperty(GpuBackend.SAMPLING_PROPERTY, "false");
                }
                if (run == 5) {
                    System.setProperty(GemvKernel.PROPERTY, "false");
                }
                if (run == 6) {
                    System.setProperty(Kernel.PROGRAMMATIC_PROPERTY, "false");
                }
                if (run == 7) {
                    System.setProperty(GemvKernel.ROWS_PROPERTY, String.valueOf(GemvKernel.KERNEL_ROWS));
                }
                EngineOptions runOptions = run == 0 ? options.withMaxSequences(1) : options;
                List<GpuBackend> opened = new java.util.ArrayList<>();
                List<ServingBenchmark.ThroughputRow> rows = ServingBenchmark.throughput(loaded, () -> {
                    GpuBackend backend = GpuBackend.open(loaded, 0, graphs);
                    opened.add(backend);
                    return backend;
                }, runOptions, levels, 128, 128, sampling, message -> { });
                System.clearProperty(GpuBackend.SAMPLING_PROPERTY);
                System.clearProperty(GemvKernel.PROPERTY);
                System.clearProperty(Kernel.PROGRAMMATIC_PROPERTY);
                System.clearProperty(GemvKernel.ROWS_PROPERTY);
                String mode = switch (run) {
                    case 3 -> "sampled on the device";
                    case 4 -> "sampled on the host";
                    case 5 -> "greedy, products through cuBLAS";
                    case 6 -> "greedy, products without programmatic launch";
                    case 7 -> "greedy, few-rows products up to 8 rows";
                    default -> "greedy";
                };
                System.out.printf("[gpu-serving] run %d, graphs %s, %s: %s; %d graph replays%n", run,
                        graphs ? "on" : "off", mode, opened.get(0).stepProfile(), opened.get(0).graphReplays());
                for (ServingBenchmark.ThroughputRow row : rows) {
                    System.out.printf("[gpu-serving] %s, granite300m bf16, graphs %s, " + mode + ": %d concurrent, prompt %d,"
                            + " %d generated each: %.1f generated tokens/s, mean TTFT %.1f ms, mean decode %.1f"
                            + " tokens/s per request = %.3f ms/token (floor %.3f ms = %.0f MB / 3.0 TB/s)%n",
                            device.description(), graphs ? "on" : "off", row.concurrency(), row.promptTokens(),
                            row.generatedPerRequest(), row.generatedTokensPerSecond(), row.meanTimeToFirstTokenMillis(),
                            row.meanDecodeTokensPerSecond(), 1000 / row.meanDecodeTokensPerSecond(), floorMs,
                            weightBytes / 1e6);
                    assertThat(row.generatedTokensPerSecond()).isPositive();
                }
            }
        } finally {
            try (Stream<Path> files = Files.walk(folder)) {
                for (Path file : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(file);
                }
            }
        }
    }
}
