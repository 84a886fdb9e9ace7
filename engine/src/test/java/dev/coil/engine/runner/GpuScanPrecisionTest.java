package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.greedy;
import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.model.Fixtures;
import dev.coil.engine.model.TestModels;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code --ssd-precision tf32} through {@link Backends#open}, as the commands open the engine: the
 * backend says so, its prefill's logprobs move, and the greedy tokens stay the f32 scan's until a
 * near tie (GpuModelTest checks the logits against transformers).
 */
@GpuTest
class GpuScanPrecisionTest {

    static List<String> models() {
        return Fixtures.MODELS;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void aTf32ScanReachesTheEngineAndKeepsTheF32Tokens(String fixture) {
        GpuFixture.device(); // fails, not skips, without a GPU
        LoadedModel model = TestModels.load(fixture);
        // 200 tokens and 8 generated: within the fixtures' 256-token windows.
        int[] ids = prompt(model.config().vocabSize(), 200, 23);
        EngineRuns.Outcome f32 = generate(model, ScanPrecision.F32, ids, null);
        EngineRuns.Outcome tf32 = generate(model, ScanPrecision.TF32, ids, "SSD scan in tf32");
        GpuEngineTest.assertSameUntilANearTie(tf32, f32, fixture + ", tf32 scan against f32");
        double moved = 0;
        for (int i = 0; i < f32.logprobs().size(); i++) {
            moved = Math.max(moved, Math.abs(tf32.logprobs().get(i).chosen().logprob()
                    - f32.logprobs().get(i).chosen().logprob()));
        }
        System.out.printf("[scan-precision] %s: tf32 against f32, max |Δ logprob| of the chosen tokens = %.2e%n",
                fixture, moved);
        assertThat(moved).as(fixture + ": the tf32 scan's logprobs differ from the f32 scan's").isPositive();
    }

    private static EngineRuns.Outcome generate(LoadedModel model, ScanPrecision precision, int[] ids,
            String described) {
        Backend backend = Backends.open(Devices.cuda(0), model, 1, precision);
        try (Engine engine = Engine.start(model, backend, EngineTest.SMALL)) {
            if (described != null) {
                assertThat(engine.backendDescription()).contains(described);
            } else {
                assertThat(engine.backendDescription()).doesNotContain("tf32");
            }
            EngineRuns.Outcome outcome = run(engine, greedy(ids, 8, 3));
            assertThat(outcome.failed()).as("the request failed").isNull();
            return outcome;
        }
    }
}
