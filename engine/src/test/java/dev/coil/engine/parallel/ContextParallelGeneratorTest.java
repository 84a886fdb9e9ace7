package dev.coil.engine.parallel;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.Fixtures;
import dev.coil.engine.model.HybridModel;
import dev.coil.engine.model.Phase;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.model.TestModels;
import dev.coil.engine.runner.Generation;
import dev.coil.engine.runner.Generator;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.Sampler;
import dev.coil.engine.runner.SamplingParams;
import java.util.stream.Stream;
import org.assertj.core.data.Offset;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Prefill sharded, then decode over the sharded context, against the one-device generator and forward. */
class ContextParallelGeneratorTest {

    private static final CpuOps ONE_DEVICE = new CpuOps(new Parallel(1));
    private static final int STEPS = 8;

    static Stream<Arguments> fixtures() {
        return Fixtures.MODELS.stream().map(Arguments::of);
    }

    @ParameterizedTest
    @MethodSource("fixtures")
    void greedyTokensEqualTheOneDeviceGenerator(String fixture) {
        LoadedModel model = TestModels.load(fixture);
        int[] prompt = ContextParallelScorerTest.prompt(45, model.config().vocabSize(), 3);
        SamplingParams params = SamplingParams.greedy().withMaxTokens(STEPS);
        Generation expected = new Generator(model, ONE_DEVICE).generate(prompt, params, true, text -> { });
        assertThat(expected.tokenIds()).hasSize(STEPS);
        for (int count : new int[] {2, 3}) {
            for (ShardLayout layout : ShardLayout.values()) {
                RingGeneration sharded = new ContextParallelGenerator(model, TestDevices.of(count),
                        layout).generate(prompt, params, true);
                assertThat(sharded.generation().tokenIds()).as("%s %s x%d", fixture, layout, count)
                        .containsExactly(expected.tokenIds());
                assertThat(sharded.paths()).containsExactly("ring x" + count);
            }
        }
    }

    /** Each decode step's distribution, not only its argmax: logprobs within f32 rounding of the one-device forward. */
    @ParameterizedTest
    @MethodSource("fixtures")
    void decodeLogprobsEqualTheOneDeviceForward(String fixture) {
        HybridModel model = TestModels.load(fixture).model();
        int vocab = model.config().vocabSize();
        int[] prompt = ContextParallelScorerTest.prompt(37, vocab, 11);
        int[] continuation = ContextParallelScorerTest.prompt(STEPS, vocab, 12);

        SequenceState single = model.newSequence();
        float[] expected = model.forward(ONE_DEVICE, single, prompt, Phase.PREFILL, false);
        ContextParallelModel parallel = new ContextParallelModel(model, TestDevices.of(3));
        ShardedSequence sharded = parallel.newSequence(ShardLayout.ZIGZAG, prompt.length);
        float[] actual = parallel.lastLogits(sharded, parallel.prefill(sharded, prompt));
        for (int step = 0; ; step++) {
            assertCloseLogprobs(actual, expected, fixture + " step " + step);
            if (step == STEPS) {
                break;
            }
            expected = model.forward(ONE_DEVICE, single, new int[] {continuation[step]}, Phase.DECODE, false);
            actual = parallel.decode(sharded, continuation[step]);
        }
        assertThat(sharded.length()).isEqualTo(prompt.length + STEPS);
        for (int block = 0; block < model.config().blocks().size(); block++) {
            if (model.config().blocks().get(block) instanceof BlockSpec.Attention) {
                int held = 0;
                for (int device = 0; device < 3; device++) {
                    int expectedRows = sharded.sharding().rows(device) + (device == sharded.stateDevice() ? STEPS : 0);
                    assertThat(sharded.shardLength(device, block)).isEqualTo(expectedRows);
                    held += sharded.shardLength(device, block);
                }
                assertThat(held).as("every position's keys on exactly one device").isEqualTo(sharded.length());
            }
        }
    }

    private static void assertCloseLogprobs(float[] actual, float[] expected, String what) {
        float[] actualLogprobs = Sampler.logSoftmax(actual);
        float[] expectedLogprobs = Sampler.logSoftmax(expected);
        for (int i = 0; i < expected.length; i++) {
            assertThat(actualLogprobs[i]).as("%s: token %d", what, i).isCloseTo(expectedLogprobs[i], Offset.offset(1e-4f));
        }
    }
}
