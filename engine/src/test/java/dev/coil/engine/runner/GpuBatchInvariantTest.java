package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.gpu.model.GpuBackend;
import dev.coil.engine.model.Fixtures;
import dev.coil.engine.model.Granite300mCheckpoint;
import dev.coil.engine.model.TestModels;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code --batch-invariant} on the GPU, on every fixture model (Mamba-2, attention, both routed
 * experts' kinds, f32 and bf16 weights): each request served alone, then all of them at once in
 * one engine (prompts chunked beside other prompts and decodes, decode steps of 1 to 12 rows, CUDA
 * graphs on), gets the same tokens and the same logprobs bit for bit, greedy and sampled alike; and
 * so does a bf16 model of the 300M shape (the products' real widths, a 49k-row lm_head).
 *
 * <p>{@code -Dcoil.test.batchInvariant=false} runs the same requests without the mode, to see that
 * these checks can fail: without it, the rows' products round by the batch around them.
 */
@GpuTest
class GpuBatchInvariantTest {

    private static final boolean INVARIANT = !"false".equalsIgnoreCase(
            System.getProperty("coil.test.batchInvariant", "true"));

    static List<String> models() {
        return Fixtures.MODELS;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void eachRequestGetsItsTokensAndLogprobsAloneBitForBit(String fixture) throws Exception {
        GpuFixture.device(); // fails, not skips, without a GPU
        LoadedModel model = TestModels.load(fixture);
        // 64 tokens a step for 12 sequences: prompts in chunks of 53, and steps that mix them.
        assertAloneAndTogetherAlike(model, requests(model.config().vocabSize(), 12, 11),
                EngineTest.SMALL.withMaxSequences(12).withMaxBatchedTokens(64));
    }

    @Test
    void aBf16ModelOfThe300mShapeGetsItsTokensAndLogprobsAloneBitForBit() throws Exception {
        GpuFixture.device();
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel model = LoadedModel.load(checkpoint.folder())) {
            // Prompts of 3 to 336 tokens in chunks of 245 (256 tokens a step, 12 sequences).
            assertAloneAndTogetherAlike(model, requests(model.config().vocabSize(), 10, 37),
                    EngineOptions.DEFAULTS.withCacheMemory("2G").withMaxSequences(12).withMaxBatchedTokens(256));
        }
    }

    /**
     * Forty requests at once, so that decode steps of 32 rows and more take the product's wide kernel
     * (and its conv and silu · up as launches of their own) while each request alone takes the
     * few-rows kernel with them at its ends.
     */
    @Test
    void fortyRequestsAtOnceOnTheBf16ModelGetTheirTokensAndLogprobsAloneBitForBit() throws Exception {
        GpuFixture.device();
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel model = LoadedModel.load(checkpoint.folder())) {
            // Prompts of 3 to 81 tokens (512 tokens a step, 48 sequences), all taken within a few steps,
            // then steps of up to 40 decode rows.
            assertAloneAndTogetherAlike(model, requests(model.config().vocabSize(), 40, 2),
                    EngineOptions.DEFAULTS.withCacheMemory("2G").withMaxSequences(48).withMaxBatchedTokens(512));
        }
    }

    /** count requests with prompts of 3, 3 + step, … tokens; every third sampled, all with 3 logprobs. */
    private static List<EngineRequest> requests(int vocab, int count, int step) {
        List<EngineRequest> requests = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int[] ids = prompt(vocab, 3 + step * i, 300 + i);
            SamplingParams params = i % 3 == 2
                    ? SamplingParams.greedy().withTemperature(0.9).withTopP(0.9).withSeed(40L + i)
                    : SamplingParams.greedy();
            requests.add(new EngineRequest(ids, params.withMaxTokens(8 + i % 4), true, 3, -1));
        }
        return requests;
    }

    /** Each request alone, then all at once, in one batch-invariant engine: the same tokens and logprobs. */
    private static void assertAloneAndTogetherAlike(LoadedModel model, List<EngineRequest> requests,
            EngineOptions options) throws Exception {
        try (Engine engine = Engine.start(model,
                GpuBackend.open(model, 0, true, SsdScanKernel.Precision.F32, INVARIANT),
                options.withBatchInvariant(INVARIANT))) {
            EngineRuns.assertAloneAndTogetherAlike(engine, requests);
            assertThat(((GpuBackend) engine.backend()).graphReplays()).as("decode steps replayed from CUDA graphs")
                    .isPositive();
        }
    }
}
