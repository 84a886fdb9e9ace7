package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.bench.CpuBenchmark;
import dev.coil.engine.bench.RandomCheckpoint;
import dev.coil.engine.bench.RandomNemotronCheckpoint;
import dev.coil.engine.bench.ServingBenchmark;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.load.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Prints the serving engine's figures on the GPU for random bf16 mixtures of experts: one of
 * granite-4.0-h-tiny's size ({@link RandomCheckpoint.Shape#graniteTinyShaped}, about 7.1B parameters)
 * with its dense twin, and the first 13 blocks of a Nemotron-3-Nano-shaped model (NemotronH's
 * router and experts, about 7.4B parameters): batch-1 decode ms/token beside the floor of reading
 * once the weights a token takes (its experts in every block, not all of them), generated tokens/s
 * at 64 concurrent requests, and the prefill of one long prompt. Nothing is asserted on time.
 */
@GpuTest
class GpuExpertsTimingTest {

    private static final double BANDWIDTH = 4.8e12;

    @Test
    void printsDecodeAndPrefillOfAMixtureOfExpertsOfGraniteTinysSize() throws Exception {
        measure(folder -> RandomCheckpoint.write(folder, RandomCheckpoint.Shape.graniteTinyShaped(), DType.BF16, 42),
                "with experts", true);
        // The same shape without its experts (the shared MLP alone): what the experts add.
        RandomCheckpoint.Shape tiny = RandomCheckpoint.Shape.graniteTinyShaped();
        RandomCheckpoint.Shape dense = new RandomCheckpoint.Shape(tiny.vocab(), tiny.hidden(), tiny.layers(),
                tiny.attentionEvery(), tiny.queryHeads(), tiny.kvHeads(), tiny.mambaHeads(), tiny.mambaHeadDim(),
                tiny.stateSize(), tiny.ffn());
        measure(folder -> RandomCheckpoint.write(folder, dense, DType.BF16, 42), "without experts", false);
    }

    /**
     * NemotronH's experts (sigmoid router, squared-ReLU experts, one tensor an expert): the first 13 of
     * Nemotron-3-Nano-30B-A3B's 52 blocks ({@link RandomNemotronCheckpoint.Shape#nemotronNanoFirstBlocks}),
     * 5 of them with 128 experts of which 6 take a token.
     */
    @Test
    void printsDecodeAndPrefillOfTheFirstBlocksOfANemotronNanoShapedModel() throws Exception {
        measure(folder -> RandomNemotronCheckpoint.write(folder,
                RandomNemotronCheckpoint.Shape.nemotronNanoFirstBlocks(13), DType.BF16, 42), "nemotron-nano 13 blocks",
                true);
    }

    /**
     * The same blocks with their experts behind a latent projection of 1024 (moe_latent_size, as
     * Nemotron-3-Super lays its experts out): fc1_latent_proj [1024, 2688] before the experts, which
     * then read and write 1024 values, fc2_latent_proj [2688, 1024] after their sum.
     */
    @Test
    void printsDecodeAndPrefillOfTheFirstBlocksOfANemotronNanoShapedModelWithLatentExperts() throws Exception {
        RandomNemotronCheckpoint.Shape nano = RandomNemotronCheckpoint.Shape.nemotronNanoFirstBlocks(13);
        RandomNemotronCheckpoint.Shape latent = new RandomNemotronCheckpoint.Shape(nano.vocab(), nano.hidden(),
                nano.pattern(), nano.queryHeads(), nano.kvHeads(), nano.headDim(), nano.mambaHeads(),
                nano.mambaHeadDim(), nano.groups(), nano.stateSize(), nano.experts(), nano.perToken(),
                nano.expertWidth(), nano.sharedWidth(), 1024);
        measure(folder -> RandomNemotronCheckpoint.write(folder, latent, DType.BF16, 42),
                "nemotron-nano 13 blocks, latent experts", true);
    }

    /**
     * Where a 64-row decode step of the granite-4.0-h-tiny-shaped model spends its time: run with
     * {@code JAVA_PROPS="-Dcoil.cuda.traceSteps=20 -Dcoil.cuda.traceAfter=40"}, it prints the median µs
     * from each kernel's wait to the next one's over 20 replayed steps of 64 decoding rows
     * ({@code DecodeTrace}).
     */
    @Test
    void printsWhereA64RowStepOfGraniteTinysShapeGoes() throws Exception {
        traceDecodeSteps(64, GRANITE_TINY);
    }

    /** The same for one decoding row: where batch-1 decode of the experts' block goes. */
    @Test
    void printsWhereABatchOneStepOfGraniteTinysShapeGoes() throws Exception {
        traceDecodeSteps(1, GRANITE_TINY);
    }

    /** The same for one decoding row of the 13 Nemotron-3-Nano-shaped blocks. */
    @Test
    void printsWhereABatchOneStepOfTheNemotronNanoShapedBlocksGoes() throws Exception {
        traceDecodeSteps(1, folder -> RandomNemotronCheckpoint.write(folder,
                RandomNemotronCheckpoint.Shape.nemotronNanoFirstBlocks(13), DType.BF16, 42));
    }

    private static final Writer GRANITE_TINY =
            folder -> RandomCheckpoint.write(folder, RandomCheckpoint.Shape.graniteTinyShaped(), DType.BF16, 42);

    private static void traceDecodeSteps(int requests, Writer writer) throws Exception {
        Path folder = Files.createTempDirectory(Path.of("/tmp"), "coil-experts-trace");
        try {
            writer.write(folder);
            try (LoadedModel loaded = LoadedModel.load(folder)) {
                EngineOptions options = EngineOptions.DEFAULTS.withMaxSequences(64).withMaxBatchedTokens(8192)
                        .withCacheMemory("8G").withPrefixCaching(false);
                AtomicReference<GpuBackend> opened = new AtomicReference<>();
                ServingBenchmark.ThroughputRow row = ServingBenchmark.throughput(loaded, () -> {
                    GpuBackend backend = GpuBackend.open(loaded, 0, true);
                    opened.set(backend);
                    return backend;
                }, options, new int[] {requests}, 128, 128, message -> { }).get(0);
                System.out.printf("[gpu-experts-trace] %d requests: %.1f generated tokens/s, %.3f ms a step%n",
                        requests, row.generatedTokensPerSecond(), 1000 / row.meanDecodeTokensPerSecond());
                System.out.println("[gpu-experts-trace] " + opened.get().stepTrace());
                System.out.println("[gpu-experts-trace] " + opened.get().stepProfile());
            }
        } finally {
            try (Stream<Path> files = Files.walk(folder)) {
                for (Path file : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(file);
                }
            }
        }
    }

    /** Writes a random checkpoint into a folder. */
    private interface Writer {
        void write(Path folder) throws IOException;
    }

    private static void measure(Writer writer, String name, boolean longPrompts) throws Exception {
        CudaDevice device = GpuFixture.device();
        Path folder = Files.createTempDirectory(Path.of("/tmp"), "coil-experts-shaped");
        try {
            long writing = System.nanoTime();
            writer.write(folder);
            System.out.printf("[gpu-experts] wrote the random checkpoint in %.1f s%n", (System.nanoTime() - writing) / 1e9);
            try (LoadedModel loaded = LoadedModel.load(folder)) {
                long bytes = CpuBenchmark.weightBytesPerToken(loaded);
                double floorMs = bytes / BANDWIDTH * 1e3;
                EngineOptions options = EngineOptions.DEFAULTS.withMaxSequences(64)
                        .withMaxBatchedTokens(Integer.getInteger("coil.bench.maxBatchedTokens", 8192))
                        .withCacheMemory("8G").withPrefixCaching(false);
                List<ServingBenchmark.ThroughputRow> rows = new ArrayList<>();
                for (int concurrency : new int[] {1, 64}) {
                    AtomicReference<GpuBackend> opened = new AtomicReference<>();
                    rows.addAll(ServingBenchmark.throughput(loaded, () -> {
                        GpuBackend backend = GpuBackend.open(loaded, 0, true);
                        opened.set(backend);
                        return backend;
                    }, options, new int[] {concurrency}, 128, 128, message -> { }));
                    System.out.printf("[gpu-experts] %s, %d concurrent: %s%n", name, concurrency,
                            opened.get().stepProfile());
                }
                for (ServingBenchmark.ThroughputRow row : rows) {
                    System.out.printf("[gpu-experts] %s, %s, %d parameters, greedy: %d concurrent, prompt %d, %d"
                            + " generated each: %.1f generated tokens/s, mean TTFT %.1f ms, %.3f ms/token (floor %.3f ms ="
                            + " %.0f MB a token reads / 4.8 TB/s)%n", device.description(), name,
                            loaded.checkpoint().parameterCount(),
                            row.concurrency(), row.promptTokens(), row.generatedPerRequest(),
                            row.generatedTokensPerSecond(), row.meanTimeToFirstTokenMillis(),
                            1000 / row.meanDecodeTokensPerSecond(), floorMs, bytes / 1e6);
                    assertThat(row.generatedPerRequest()).as("tokens each request generated").isPositive();
                }
                for (int promptTokens : longPrompts ? new int[] {2048, 8192} : new int[0]) {
                    ServingBenchmark.ThroughputRow prefill = ServingBenchmark.throughput(loaded,
                            () -> GpuBackend.open(loaded, 0, true), options.withMaxSequences(1), new int[] {1},
                            promptTokens, 1, message -> { }).get(0);
                    System.out.printf("[gpu-experts] %s, %s: one %d-token prompt: TTFT %.1f ms = %.0f prompt"
                            + " tokens/s%n", device.description(), name, promptTokens, prefill.meanTimeToFirstTokenMillis(),
                            promptTokens / prefill.meanTimeToFirstTokenMillis() * 1e3);
                }
            }
        } finally {
            try (Stream<Path> files = Files.walk(folder)) {
                for (Path file : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(file);
                }
            } catch (IOException e) {
                System.out.println("[gpu-experts] could not delete " + folder + ": " + e.getMessage());
            }
        }
    }
}
