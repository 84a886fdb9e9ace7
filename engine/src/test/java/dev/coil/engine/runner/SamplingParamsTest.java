package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Set;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class SamplingParamsTest {

    @Test
    void defaultsAreOpenAisAndTurnEveryFilterOff() {
        SamplingParams params = SamplingParams.builder().build();
        assertThat(params.temperature()).isEqualTo(1);
        assertThat(params.topK()).isZero();
        assertThat(params.topP()).isEqualTo(1);
        assertThat(params.minP()).isZero();
        assertThat(params.repetitionPenalty()).isEqualTo(1);
        assertThat(params.presencePenalty()).isZero();
        assertThat(params.frequencyPenalty()).isZero();
        assertThat(params.seed()).isNull();
        assertThat(params.stopTokenIds()).isEmpty();
        assertThat(params.stopStrings()).isEmpty();
        assertThat(params.maxTokens()).isEqualTo(SamplingParams.UNLIMITED_TOKENS);
        assertThat(params.isGreedy()).isFalse();
        assertThat(SamplingParams.greedy().isGreedy()).isTrue();
    }

    @Test
    void withMethodsChangeOneValue() {
        SamplingParams base = SamplingParams.builder().topP(0.9).seed(7L).stopStrings(List.of("END")).build();
        SamplingParams changed = base.withTemperature(0.3).withTopK(40).withStopTokenIds(Set.of(2));
        assertThat(changed.temperature()).isEqualTo(0.3);
        assertThat(changed.topK()).isEqualTo(40);
        assertThat(changed.topP()).isEqualTo(0.9);
        assertThat(changed.seed()).isEqualTo(7L);
        assertThat(changed.stopStrings()).containsExactly("END");
        assertThat(changed.stopTokenIds()).containsExactly(2);
        assertThat(base.toBuilder().build()).isEqualTo(base);
    }

    @Test
    void topKMinusOneMeansOff() {
        assertThat(SamplingParams.builder().topK(-1).build().topK()).isZero();
    }

    static Stream<Arguments> invalid() {
        return Stream.of(
                bad("temperature must be a finite number >= 0 (0 is greedy), got -0.5", b -> b.temperature(-0.5)),
                bad("temperature must be a number, got NaN", b -> b.temperature(Double.NaN)),
                bad("temperature must be a finite number", b -> b.temperature(Double.POSITIVE_INFINITY)),
                bad("top_k must be >= -1 (-1 and 0 turn it off), got -2", b -> b.topK(-2)),
                bad("top_p must be in (0, 1], got 1.5", b -> b.topP(1.5)),
                bad("top_p must be in (0, 1], got 0.0", b -> b.topP(0)),
                bad("top_p must be a number, got NaN", b -> b.topP(Double.NaN)),
                bad("min_p must be in [0, 1], got -0.1", b -> b.minP(-0.1)),
                bad("min_p must be in [0, 1], got 1.1", b -> b.minP(1.1)),
                bad("repetition_penalty must be a finite number > 0 (1 turns it off), got 0.0",
                        b -> b.repetitionPenalty(0)),
                bad("repetition_penalty must be a number, got NaN", b -> b.repetitionPenalty(Double.NaN)),
                bad("presence_penalty must be in [-2, 2], got 2.5", b -> b.presencePenalty(2.5)),
                bad("frequency_penalty must be in [-2, 2], got -3.0", b -> b.frequencyPenalty(-3)),
                bad("frequency_penalty must be a number, got NaN", b -> b.frequencyPenalty(Double.NaN)),
                bad("max_tokens must be >= 0, got -1", b -> b.maxTokens(-1)),
                bad("stop must not contain an empty string", b -> b.stopStrings(List.of("ok", ""))),
                bad("stop_token_ids must hold non-negative token ids, got -4", b -> b.stopTokenIds(Set.of(-4))));
    }

    private static Arguments bad(String message, java.util.function.UnaryOperator<SamplingParams.Builder> set) {
        Supplier<SamplingParams> build = () -> set.apply(SamplingParams.builder()).build();
        return Arguments.of(message, build);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("invalid")
    void rejectsInvalidValuesNamingTheParameter(String message, Supplier<SamplingParams> build) {
        assertThatThrownBy(build::get).isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith(message);
    }
}
