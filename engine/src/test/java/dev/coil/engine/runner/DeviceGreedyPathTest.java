package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.greedy;
import static dev.coil.engine.runner.EngineRuns.prompt;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.StateStore;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.model.TestModels;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A backend that picks greedy tokens itself (as the GPU's does) and returns only their ids: the
 * engine's requests end with the tokens and text of one that returns logits, and requests that
 * want logprobs or penalties still get logits.
 */
class DeviceGreedyPathTest {

    /** The CPU backend, answering GREEDY segments with the argmax id alone. */
    static class TokensOnly implements Backend {
        final CpuBackend cpu = new CpuBackend(TestModels.load("granitemoehybrid").model(), EngineTest.OPS);
        final AtomicInteger tokensOnly = new AtomicInteger();

        @Override
        public String description() {
            return "cpu, greedy tokens only";
        }

        @Override
        public long freeMemoryBytes() {
            return cpu.freeMemoryBytes();
        }

        @Override
        public StateStore newStateStore(CacheSizing sizing) {
            return cpu.newStateStore(sizing);
        }

        @Override
        public SequenceState newSequence(StateStore store, int slot) {
            return cpu.newSequence(store, slot);
        }

        @Override
        public List<Batch.Output> forward(Batch batch) {
            List<Batch.Output> outputs = new ArrayList<>(cpu.forward(batch));
            for (int s = 0; s < batch.size(); s++) {
                if (batch.segment(s).logits() == Batch.Logits.GREEDY) {
                    float[] logits = outputs.get(s).logits();
                    int best = 0;
                    for (int i = 1; i < logits.length; i++) {
                        best = logits[i] > logits[best] ? i : best;
                    }
                    outputs.set(s, new Batch.Output(null, best));
                    tokensOnly.incrementAndGet();
                }
            }
            return outputs;
        }

        @Override
        public void close() {
        }
    }

    @Test
    void tokensPickedByTheBackendGiveTheSameRequests() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        List<EngineRequest> requests = List.of(greedy(prompt(vocab, 23, 1), 9, -1), greedy(prompt(vocab, 40, 2), 7, 2),
                new EngineRequest(prompt(vocab, 17, 3), SamplingParams.greedy().withMaxTokens(6)
                        .withRepetitionPenalty(1.3), true, -1, -1));
        List<EngineRuns.Outcome> expected = new ArrayList<>();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            for (EngineRequest request : requests) {
                expected.add(EngineRuns.run(engine, request));
            }
        }
        TokensOnly backend = new TokensOnly();
        try (Engine engine = Engine.start(model, backend, EngineTest.SMALL)) {
            for (int i = 0; i < requests.size(); i++) {
                EngineRuns.Outcome outcome = EngineRuns.run(engine, requests.get(i));
                assertThat(outcome.tokens()).as("request %d", i).isEqualTo(expected.get(i).tokens());
                assertThat(outcome.logprobs()).hasSameSizeAs(expected.get(i).logprobs());
                assertThat(outcome.finished().reason()).isEqualTo(expected.get(i).finished().reason());
            }
        }
        // Only the plain greedy request (9 tokens) was served by ids alone.
        assertThat(backend.tokensOnly.get()).isEqualTo(9);
    }
}
