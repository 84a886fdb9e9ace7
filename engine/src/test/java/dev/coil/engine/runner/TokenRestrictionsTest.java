package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.model.TestModels;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * vLLM's allowed_token_ids and bad_words: what they forbid, and requests through the engine (the CPU
 * backend's logits masked on the host, and a backend drawing with the draw's mask and biases as the
 * GPU does) holding to them.
 */
class TokenRestrictionsTest {

    private static final LoadedModel MODEL = TestModels.load("granitemoehybrid");
    private static final int VOCAB = MODEL.config().vocabSize();

    @Test
    void aBadWordsLastTokenIsForbiddenWhereTheOutputEndsWithTheRest() {
        SamplingParams sampling = SamplingParams.greedy().withBadWords(List.of(List.of(5, 6, 7), List.of(9), List.of(6, 8)));
        TokenRestrictions restrictions = TokenRestrictions.of(sampling);
        assertThat(restrictions.dependsOnHistory()).isTrue();
        assertThat(restrictions.banned(new int[0], 0)).containsExactly(9);
        assertThat(restrictions.banned(new int[] {1, 5, 6}, 3)).containsExactly(7, 8, 9);
        assertThat(restrictions.banned(new int[] {5, 6, 0}, 2)).as("only the first two count").containsExactly(7, 8, 9);
        assertThat(restrictions.banned(new int[] {5, 7}, 2)).containsExactly(9);
        assertThat(restrictions.banned(new int[] {6}, 1)).containsExactly(8, 9);
        assertThat(restrictions.banned(new int[] {6, 5}, 2)).containsExactly(9);
        assertThat(TokenRestrictions.of(SamplingParams.greedy().withBadWords(List.of(List.of(3)))).dependsOnHistory())
                .isFalse();
        assertThat(TokenRestrictions.of(SamplingParams.greedy()).isEmpty()).isTrue();

        float[] logits = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        float[] restricted = restrictions.ban(logits, new int[] {6}, 1);
        assertThat(restricted[8]).isEqualTo(Float.NEGATIVE_INFINITY);
        assertThat(restricted[9]).isEqualTo(Float.NEGATIVE_INFINITY);
        assertThat(restricted[7]).isEqualTo(7);
        assertThat(logits[8]).as("the logits themselves are left alone").isEqualTo(8);
    }

    @Test
    void allowedTokenIdsMaskEveryOtherToken() {
        TokenRestrictions restrictions = TokenRestrictions.of(SamplingParams.greedy().withAllowedTokenIds(Set.of(2, 33, 64)));
        assertThat(restrictions.isEmpty()).isFalse();
        assertThat(restrictions.dependsOnHistory()).isFalse();
        int[] bits = restrictions.allowedBits();
        assertThat(bits).containsExactly(1 << 2, 1 << 1, 1);
        float[] restricted = TokenBits.masked(new float[70], bits);
        for (int id = 0; id < restricted.length; id++) {
            assertThat(restricted[id]).as("token %d", id)
                    .isEqualTo(id == 2 || id == 33 || id == 64 ? 0f : Float.NEGATIVE_INFINITY);
        }
        assertThat(TokenBits.intersect(bits, new int[] {0b110})).containsExactly(0b100);
        assertThat(TokenBits.intersect(null, bits)).isSameAs(bits);
        assertThat(TokenBits.intersect(null, null)).isNull();
    }

    /**
     * Greedy, sampled and with logprobs: every token is an allowed one; the logprobs stay the model's
     * own (the most likely token may be one the list refuses); the same tokens when a backend draws.
     */
    @Test
    void requestsWithAllowedTokenIdsGenerateOnlyThem() {
        Set<Integer> allowed = Set.of(3, 17, 40, 101, VOCAB - 1);
        List<EngineRequest> requests = List.of(
                request(SamplingParams.greedy().withAllowedTokenIds(allowed), 11, 3),
                request(SamplingParams.greedy().withTemperature(1.2).withSeed(4L).withAllowedTokenIds(allowed), 12, 3),
                request(SamplingParams.greedy().withAllowedTokenIds(Set.of(17)), 13, -1),
                request(SamplingParams.greedy(), 11, 1));
        List<EngineRuns.Outcome> host = runAll(Engine.start(MODEL, EngineTest.OPS, EngineTest.SMALL), requests);
        for (int i = 0; i < 2; i++) {
            assertThat(host.get(i).tokens()).as("request %d", i).hasSize(12).allMatch(allowed::contains);
        }
        assertThat(host.get(2).tokens()).hasSize(12).containsOnly(17);
        // Request 0's logprobs are the model's own: its first position's most likely token is the one the
        // same prompt gives unrestricted (request 3), which the list refuses.
        assertThat(host.get(3).tokens().getFirst()).isNotIn(allowed);
        assertThat(host.get(0).logprobs().getFirst().top().getFirst().id()).isEqualTo(host.get(3).tokens().getFirst());
        List<EngineRuns.Outcome> drawn = runAll(Engine.start(MODEL, new RunAheadTest.Feeding(), EngineTest.SMALL),
                requests);
        for (int i = 0; i < requests.size(); i++) {
            assertThat(drawn.get(i).tokens()).as("request %d drawn by the backend", i)
                    .isEqualTo(host.get(i).tokens());
        }
        EngineTest.assertSameLogprobs(drawn.get(0).logprobs(), host.get(0).logprobs(), 1e-4);
    }

    /**
     * A greedy request's output with a bad word taken from it (two tokens of it, and one more token
     * alone): the same output up to where the word would complete, then never the word whole nor the
     * banned token; the same tokens when a backend draws.
     */
    @Test
    void badWordsNeverAppearWhole() {
        List<Integer> free = runAll(Engine.start(MODEL, EngineTest.OPS, EngineTest.SMALL),
                List.of(request(SamplingParams.greedy(), 21, -1))).getFirst().tokens();
        List<Integer> pair = List.of(free.get(3), free.get(4));
        int single = free.stream().skip(5).filter(token -> !free.subList(0, 5).contains(token)).findFirst()
                .orElseThrow();
        // Where the unrestricted output first meets a bad word: the restricted one leaves it there.
        int diverges = 0;
        while (free.get(diverges) != single
                && (diverges == 0 || !List.of(free.get(diverges - 1), free.get(diverges)).equals(pair))) {
            diverges++;
        }
        List<EngineRequest> requests = List.of(
                request(SamplingParams.greedy().withBadWords(List.of(pair, List.of(single))), 21, -1),
                request(SamplingParams.greedy().withTemperature(0.9).withSeed(8L).withBadWords(List.of(pair,
                        List.of(single))), 21, 2));
        List<EngineRuns.Outcome> host = runAll(Engine.start(MODEL, EngineTest.OPS, EngineTest.SMALL), requests);
        List<Integer> restricted = host.getFirst().tokens();
        assertThat(restricted.subList(0, diverges)).isEqualTo(free.subList(0, diverges));
        assertThat(restricted.get(diverges)).isNotEqualTo(free.get(diverges));
        for (EngineRuns.Outcome outcome : host) {
            assertThat(outcome.tokens()).hasSize(12).doesNotContain(single);
            assertThat(Collections.indexOfSubList(outcome.tokens(), pair)).isEqualTo(-1);
        }
        List<EngineRuns.Outcome> drawn = runAll(Engine.start(MODEL, new RunAheadTest.Feeding(), EngineTest.SMALL),
                requests);
        for (int i = 0; i < requests.size(); i++) {
            assertThat(drawn.get(i).tokens()).as("request %d drawn by the backend", i)
                    .isEqualTo(host.get(i).tokens());
        }
    }

    /**
     * Constraints that leave no token: refused at submission when none may come first (the allowed
     * ids all stop ids that min_tokens holds back), and ended with NO_TOKEN_LEFT after the token whose
     * bad word bans the only allowed id (after its token, on the host and when a backend draws); a
     * request beside them is unaffected.
     */
    @Test
    void constraintsThatLeaveNoTokenEndTheRequestNamingThem() {
        SamplingParams held = SamplingParams.greedy().withAllowedTokenIds(Set.of(17, 40)).withStopTokenIds(Set.of(17, 40))
                .withMinTokens(2);
        try (Engine engine = Engine.start(MODEL, EngineTest.OPS, EngineTest.SMALL)) {
            assertThatThrownBy(() -> engine.submit(request(held, 11, -1)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("allowed_token_ids: no token is left to generate first; allowed_token_ids and "
                            + "min_tokens (holding back the end of sequence) together allow none");
        }
        SamplingParams repeated = SamplingParams.greedy().withAllowedTokenIds(Set.of(17))
                .withBadWords(List.of(List.of(17, 17)));
        List<EngineRequest> requests = List.of(request(repeated, 11, -1),
                request(repeated.withTemperature(0.8).withSeed(3L), 12, 2), request(SamplingParams.greedy(), 13, -1));
        for (Backend backend : List.of(new CpuBackend(MODEL.model(), EngineTest.OPS), new RunAheadTest.Feeding())) {
            List<EngineRuns.Outcome> outcomes = runAll(Engine.start(MODEL, backend, EngineTest.SMALL), requests);
            for (EngineRuns.Outcome outcome : outcomes.subList(0, 2)) {
                assertThat(outcome.tokens()).as(backend.description()).containsExactly(17);
                assertThat(outcome.failed().reason()).isEqualTo(EngineEvent.Failed.Reason.NO_TOKEN_LEFT);
                assertThat(outcome.failed().message()).isEqualTo("allowed_token_ids: no token is left to generate "
                        + "after 1 generated token; allowed_token_ids and bad_words together allow none");
            }
            assertThat(outcomes.get(2).finished()).as(backend.description()).isNotNull();
            assertThat(outcomes.get(2).tokens()).hasSize(12);
        }
    }

    private static EngineRequest request(SamplingParams sampling, long seed, int logprobs) {
        return new EngineRequest(prompt(VOCAB, 19, seed), sampling.withMaxTokens(12), true, logprobs, -1);
    }

    private static List<EngineRuns.Outcome> runAll(Engine engine, List<EngineRequest> requests) {
        try (engine) {
            List<RequestStream> streams = new ArrayList<>();
            requests.forEach(request -> streams.add(engine.submit(request)));
            return streams.stream().map(EngineRuns::collect).toList();
        }
    }
}
