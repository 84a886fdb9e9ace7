package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.bench.ServingBenchmark;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.model.Granite300mCheckpoint;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What {@code --batch-invariant} costs the serving benchmark on the 300M-shaped bf16 model: batch-1
 * and 64-request decode (128-token prompts, 128 tokens each) and one 8192-token prompt, with and
 * without the mode, alternately in one call (two rounds). Prints figures; asserts only that tokens
 * came out. {@code -Dcoil.bench.rounds=N} and {@code -Dcoil.bench.invariantOnly=true} narrow it (to
 * trace a step with -Dcoil.cuda.traceSteps, whose per-kernel medians are printed;
 * {@code -Dcoil.cuda.stepTiming=true} prints each run's device time a replayed step).
 */
@GpuTest
class GpuBatchInvariantTimingTest {

    @Test
    void printsWhatBatchInvarianceCostsTheServingBenchmark() throws Exception {
        CudaDevice device = GpuFixture.device();
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel loaded = LoadedModel.load(checkpoint.folder())) {
            // The server's GPU defaults but the prefix cache, which the mode turns off (off for both here).
            EngineOptions options = EngineOptions.DEFAULTS.withMaxSequences(64).withMaxBatchedTokens(8192)
                    .withCacheMemory("8G").withPrefixCaching(false);
            int rounds = Integer.getInteger("coil.bench.rounds", 2);
            boolean[] modes = Boolean.getBoolean("coil.bench.invariantOnly") ? new boolean[] {true}
                    : new boolean[] {false, true};
            for (int round = 0; round < rounds; round++) {
                for (boolean invariant : modes) {
                    String mode = invariant ? "batch-invariant" : "default";
                    for (int[] shape : new int[][] {{1, 128, 128}, {64, 128, 128}, {1, 8192, 1}}) {
                        List<GpuBackend> opened = new ArrayList<>();
                        var rows = ServingBenchmark.throughput(loaded, () -> {
                            GpuBackend backend = GpuBackend.open(loaded, 0, true, SsdScanKernel.Precision.F32,
                                    invariant);
                            opened.add(backend);
                            return backend;
                        }, options.withBatchInvariant(invariant), new int[] {shape[0]}, shape[1], shape[2],
                                message -> { });
                        if (Boolean.getBoolean(GpuBackend.STEP_TIMING_PROPERTY)) {
                            System.out.printf("[batch-invariant] %s, %d concurrent: %s%n", mode, shape[0],
                                    opened.getFirst().stepProfile());
                        }
                        if (opened.getFirst().stepTrace() != null) {
                            System.out.printf("[batch-invariant] %s, %d concurrent: per kernel of a replayed step,"
                                    + " from its wait to the next one's (median):%n%s", mode, shape[0],
                                    opened.getFirst().stepTrace());
                        }
                        for (ServingBenchmark.ThroughputRow row : rows) {
                            System.out.printf("[batch-invariant] %s, granite300m bf16, round %d, %s: %d concurrent,"
                                    + " prompt %d, %d generated each: %.1f generated tokens/s, mean TTFT %.2f ms"
                                    + " (%.0f prompt tokens/s), %.3f ms/token%n", device.description(), round, mode,
                                    row.concurrency(), row.promptTokens(), row.generatedPerRequest(),
                                    row.generatedTokensPerSecond(), row.meanTimeToFirstTokenMillis(),
                                    row.promptTokens() / row.meanTimeToFirstTokenMillis() * 1e3,
                                    1000 / row.meanDecodeTokensPerSecond());
                            assertThat(row.generatedPerRequest()).as("tokens each request generated").isPositive();
                        }
                    }
                }
            }
        }
    }
}
