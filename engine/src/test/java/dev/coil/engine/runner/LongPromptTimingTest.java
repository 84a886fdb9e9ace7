package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.bench.RandomCheckpoint;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.load.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Prints how long the serving engine takes to prefill long prompts of the 300M-shaped model on one
 * GPU, with the server's default options and with the prefix cache's parts switched off one at a
 * time: a prompt's time to its first token, against the model's own prefill rate. Each prompt is
 * new (no prefix of it cached); then a chat's next turn after a 6000-token first one, which the
 * prefix cache serves but for its new tokens. Timings are printed, not asserted; run with
 * {@code TESTS="--select-class dev.coil.engine.runner.LongPromptTimingTest" bash .gpu/gpu-run.sh tests .gpu}.
 */
@GpuTest
class LongPromptTimingTest {

    private record Variant(String name, UnaryOperator<EngineOptions> options) {
    }

    private static final List<Variant> VARIANTS = List.of(
            new Variant("server defaults", o -> o),
            new Variant("no snapshots during prefill", o -> o.withSnapshotIntervalBlocks(0)),
            new Variant("no prefix cache", o -> o.withPrefixCaching(false)),
            new Variant("no prefix cache, 8192 tokens a step", o -> o.withPrefixCaching(false).withMaxBatchedTokens(8192)));

    @Test
    void printsTimeToFirstTokenOfLongPrompts() throws Exception {
        CudaDevice device = GpuFixture.device();
        Path folder = Files.createTempDirectory(Path.of("/tmp"), "coil-granite300m");
        RandomCheckpoint.write(folder, RandomCheckpoint.Shape.granite300m(), DType.BF16, 42);
        int[] lengths = {2000, 6000, 6000, 16000};
        System.setProperty(GpuBackend.STEP_TIMING_PROPERTY, "true");
        try (LoadedModel loaded = LoadedModel.load(folder)) {
            int vocab = loaded.config().vocabSize();
            SplittableRandom random = new SplittableRandom(5);
            for (Variant variant : VARIANTS) {
                EngineOptions options = variant.options().apply(EngineOptions.DEFAULTS.withCacheMemory("8G"));
                GpuBackend backend = GpuBackend.open(loaded, 0, true);
                List<String> results = new ArrayList<>();
                try (Engine engine = Engine.start(loaded, backend, options)) {
                    for (int length : lengths) {
                        EngineRequest request = new EngineRequest(random.ints(length, 1, vocab).toArray(),
                                SamplingParams.greedy().withMaxTokens(2), true, -1, -1);
                        long start = System.nanoTime();
                        EngineEvent.Finished finished = EngineRuns.run(engine, request).finished();
                        assertThat(finished).as("the request finished").isNotNull();
                        double millis = (System.nanoTime() - start) / 1e6;
                        RequestTimings timings = finished.timings();
                        results.add(String.format("%d tokens: first token %.1f ms (prefill %.1f ms, %.0f tokens/s),"
                                + " whole request %.1f ms", length, timings.firstTokenMillis(), timings.prefillMillis(),
                                length * 1000 / timings.prefillMillis(), millis));
                        assertThat(finished.usage().completionTokens()).isEqualTo(2);
                    }
                    // A chat's next turn: the 6000-token first turn and its 16-token reply, then 100 new
                    // tokens. With the prefix cache, only the new tokens (and the reply's last) are computed.
                    int[] turn1 = random.ints(6000, 1, vocab).toArray();
                    EngineRuns.Outcome reply = EngineRuns.run(engine,
                            new EngineRequest(turn1, SamplingParams.greedy().withMaxTokens(16), true, -1, -1));
                    int[] turn2 = EngineRuns.concat(EngineRuns.concat(turn1, reply.tokenArray()),
                            random.ints(100, 1, vocab).toArray());
                    EngineEvent.Finished next = EngineRuns.run(engine,
                            new EngineRequest(turn2, SamplingParams.greedy().withMaxTokens(2), true, -1, -1)).finished();
                    assertThat(next).as("the next turn finished").isNotNull();
                    results.add(String.format("next chat turn, %d tokens (%d cached): first token %.1f ms",
                            turn2.length, next.usage().cachedPromptTokens(), next.timings().firstTokenMillis()));
                    System.out.printf("[long-prompt] %s, granite300m bf16, %s (max %d tokens a step, snapshot every %d"
                            + " blocks, prefix cache %s):%n  %s%n  steps: %s%n", device.description(), variant.name(),
                            options.maxBatchedTokens(), options.snapshotIntervalBlocks(), options.prefixCaching(),
                            String.join("\n  ", results), backend.stepProfile());
                }
            }
        } finally {
            System.clearProperty(GpuBackend.STEP_TIMING_PROPERTY);
            try (Stream<Path> files = Files.walk(folder)) {
                for (Path file : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(file);
                }
            }
        }
    }
}
