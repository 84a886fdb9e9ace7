package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.model.Granite300mCheckpoint;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Prints what scoring prompts costs on the GPU for the 300M random shape (bf16): requests with prompt
 * logprobs (5 top tokens a position) and one generated token, as lm-eval-harness's loglikelihood asks
 * through echo with logprobs, with the prompt rows scored on the device and with their logits sent to
 * the host (-Dcoil.cuda.promptScoring=false), alternately, and the same requests without prompt
 * logprobs (the prefill alone). Nothing is asserted on time.
 */
@GpuTest
class GpuPromptScoringTimingTest {

    private static final int REQUESTS = 8;
    private static final int ROUNDS = 2;

    @Test
    void printsPromptScoringThroughputOnTheDeviceAndOnTheHost() throws Exception {
        CudaDevice device = GpuFixture.device();
        int promptTokens = Integer.getInteger("coil.bench.scoringPrompt", 2048);
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel loaded = LoadedModel.load(checkpoint.folder())) {
            int vocab = loaded.config().vocabSize();
            EngineOptions options = EngineOptions.DEFAULTS.withMaxSequences(REQUESTS).withMaxBatchedTokens(2048)
                    .withCacheMemory("8G").withPrefixCaching(false);
            for (int round = 0; round < ROUNDS; round++) {
                for (String mode : List.of("scored on the device", "from logits sent to the host", "none (prefill alone)")) {
                    boolean scored = !mode.startsWith("none");
                    System.setProperty(GpuBackend.PROMPT_SCORING_PROPERTY, Boolean.toString(!mode.startsWith("from")));
                    try (Engine engine = Engine.start(loaded, GpuBackend.open(loaded, 0, true), options)) {
                        // A warm-up request, then the timed ones, all submitted at once.
                        EngineRuns.run(engine, request(vocab, promptTokens, 999, scored));
                        long start = System.nanoTime();
                        List<RequestStream> streams = new java.util.ArrayList<>();
                        for (int i = 0; i < REQUESTS; i++) {
                            streams.add(engine.submit(request(vocab, promptTokens, i, scored)));
                        }
                        for (RequestStream stream : streams) {
                            EngineRuns.Outcome outcome = EngineRuns.collect(stream);
                            assertThat(outcome.failed()).isNull();
                            if (scored) {
                                assertThat(outcome.promptLogprobs().positions()).hasSize(promptTokens - 1);
                            }
                        }
                        double seconds = (System.nanoTime() - start) / 1e9;
                        System.out.printf("[gpu-scoring] %s, granite300m bf16, round %d, prompt logprobs %s: %d requests"
                                + " of %d prompt tokens (1 generated): %.1f ms, %.0f prompt tokens/s%n",
                                device.description(), round, mode,
                                REQUESTS, promptTokens, seconds * 1e3, REQUESTS * promptTokens / seconds);
                    } finally {
                        System.clearProperty(GpuBackend.PROMPT_SCORING_PROPERTY);
                    }
                }
            }
        }
    }

    private static EngineRequest request(int vocab, int promptTokens, long seed, boolean scored) {
        return new EngineRequest(prompt(vocab, promptTokens, seed), SamplingParams.greedy().withMaxTokens(1), true,
                scored ? 5 : -1, scored ? 5 : -1);
    }
}
