package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.model.Fixtures;
import dev.coil.engine.model.TestModels;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Generation end to end on a fixture model with a real tokenizer. */
class GeneratorTest {

    private static final CpuOps OPS = new CpuOps(new Parallel(2));
    private static final String FIXTURE = "granitemoehybrid_rope";

    private static Generation run(SamplingParams params, List<String> deltas) {
        LoadedModel model = TestModels.load(FIXTURE);
        int[] prompt = model.encode("The quick brown fox");
        return new Generator(model, OPS, 3).generate(prompt, params, deltas::add);
    }

    @Test
    void greedyGenerationEqualsTransformersGreedy() {
        LoadedModel model = TestModels.load(FIXTURE);
        for (Fixtures.Greedy expected : Fixtures.expected(FIXTURE).greedy()) {
            SamplingParams params = SamplingParams.greedy().withMaxTokens(expected.generatedIds().length);
            Generation generation = new Generator(model, OPS, 2).generate(expected.promptIds(), params, true, delta -> { });
            assertThat(generation.tokenIds()).containsExactly(expected.generatedIds());
        }
    }

    @Test
    void sameSeedSameTokensAndDifferentSeedsDiffer() {
        SamplingParams params = SamplingParams.builder().temperature(1.0).maxTokens(24).seed(7L).build();
        Generation first = run(params, new ArrayList<>());
        Generation second = run(params, new ArrayList<>());
        assertThat(second.tokenIds()).containsExactly(first.tokenIds());
        assertThat(second.text()).isEqualTo(first.text());

        boolean anyDiffers = false;
        for (long seed = 8; seed < 12 && !anyDiffers; seed++) {
            anyDiffers = !java.util.Arrays.equals(run(params.withSeed(seed), new ArrayList<>()).tokenIds(), first.tokenIds());
        }
        assertThat(anyDiffers).as("some other seed gives other tokens").isTrue();
    }

    @Test
    void streamedDeltasConcatenateToTheTextAndMatchTheTokens() {
        List<String> deltas = new ArrayList<>();
        Generation generation = run(SamplingParams.greedy().withMaxTokens(20).withStopTokenIds(Set.of()), deltas);
        assertThat(String.join("", deltas)).isEqualTo(generation.text());
        LoadedModel model = TestModels.load(FIXTURE);
        assertThat(generation.text()).isEqualTo(model.tokenizer().decode(generation.tokenIds(), true));
    }

    @Test
    void stopTokenEndsGenerationWithIt() {
        Generation free = run(SamplingParams.greedy().withMaxTokens(12), new ArrayList<>());
        assertThat(free.tokenIds()).hasSizeGreaterThan(3);
        int stopAt = free.tokenIds()[3];
        int firstOccurrence = 0;
        while (free.tokenIds()[firstOccurrence] != stopAt) {
            firstOccurrence++;
        }
        List<String> deltas = new ArrayList<>();
        Generation stopped = run(SamplingParams.greedy().withMaxTokens(12).withStopTokenIds(Set.of(stopAt)), deltas);
        assertThat(stopped.finishReason()).isEqualTo(FinishReason.STOP);
        int[] expected = java.util.Arrays.copyOf(free.tokenIds(), firstOccurrence + 1);
        assertThat(stopped.tokenIds()).containsExactly(expected);
        // The stop token's text is part of the output, as every generated token's is.
        assertThat(stopped.text()).isEqualTo(TestModels.load(FIXTURE).tokenizer().decode(expected, true));
        assertThat(String.join("", deltas)).isEqualTo(stopped.text());
    }

    @Test
    void stopStringCutsTheTextRightBeforeIt() {
        Generation free = run(SamplingParams.greedy().withMaxTokens(16), new ArrayList<>());
        assertThat(free.text().length()).isGreaterThan(6);
        String stop = free.text().substring(4, 6);
        List<String> deltas = new ArrayList<>();
        Generation stopped = run(SamplingParams.greedy().withMaxTokens(16).withStopStrings(List.of(stop)), deltas);
        assertThat(stopped.finishReason()).isEqualTo(FinishReason.STOP);
        assertThat(stopped.text()).isEqualTo(free.text().substring(0, free.text().indexOf(stop)));
        assertThat(String.join("", deltas)).isEqualTo(stopped.text());
    }

    @Test
    void maxTokensEndsWithLength() {
        Generation generation = run(SamplingParams.greedy().withMaxTokens(5), new ArrayList<>());
        assertThat(generation.finishReason()).isEqualTo(FinishReason.LENGTH);
        assertThat(generation.tokenIds()).hasSize(5);
    }

    @Test
    void withoutMaxTokensGenerationStopsAtTheContextWindow() {
        LoadedModel model = TestModels.load(FIXTURE);
        int window = model.config().contextLength();
        int[] prompt = new int[window - 4];
        java.util.Arrays.fill(prompt, 5);
        Generation generation = new Generator(model, OPS, 64).generate(prompt, SamplingParams.greedy(), true, delta -> { });
        assertThat(generation.tokenIds()).hasSize(4);
        assertThat(generation.finishReason()).isEqualTo(FinishReason.LENGTH);
    }

    @Test
    void promptPastTheContextWindowIsRefused() {
        LoadedModel model = TestModels.load(FIXTURE);
        int window = model.config().contextLength();
        assertThatThrownBy(() -> new Generator(model, OPS).generate(new int[] {1, 2, 3}, SamplingParams.greedy()
                .withMaxTokens(window), delta -> { }))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("context window");
    }
}
