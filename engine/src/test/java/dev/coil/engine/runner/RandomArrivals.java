package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.model.TestModels;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * Requests arriving at random while the engine runs: greedy and seeded sampled, with stop ids,
 * min_tokens, a bias, logprobs and a grammar among them, some cancelled after reading a few tokens.
 * Every request that is not cancelled ends as it does alone on the same engine (the same tokens and
 * finish, its logprobs to a tolerance), a cancelled one with a prefix of those tokens, and the cache
 * is empty once they have all ended.
 */
final class RandomArrivals {

    private static final int REQUESTS = 32;

    private RandomArrivals() {
    }

    /** The requests of one run, drawn from {@code random}; cancelAfter[i] is filled in (-1: not cancelled). */
    private static List<EngineRequest> requests(int vocab, Random random, int[] cancelAfter) {
        OutputGrammar regex = OutputGrammar.regex("(yes|no)-[a-f0-9]{2,6}!?");
        List<EngineRequest> requests = new ArrayList<>();
        for (int i = 0; i < cancelAfter.length; i++) {
            SamplingParams params = SamplingParams.greedy().withMaxTokens(1 + random.nextInt(24));
            if (random.nextInt(3) == 0) {
                params = params.withStopTokenIds(Set.of(random.nextInt(vocab))); // may or may not come up
            }
            if (random.nextInt(3) == 0) {
                params = params.withTemperature(0.9).withTopP(random.nextBoolean() ? 0.9 : 1.0).withSeed((long) i);
            }
            if (random.nextInt(4) == 0) { // the stop id, if any, held back for a while
                params = params.withMinTokens(random.nextInt(params.maxTokens() + 1));
            }
            if (random.nextInt(4) == 0) {
                int favoured = random.nextInt(vocab);
                params = params.withLogitBias(Map.of(favoured, 6f, (favoured + 1) % vocab, -3f));
            }
            if (random.nextInt(6) == 0) {
                params = params.withGrammar(regex);
            }
            int logprobs = random.nextInt(3) == 0 ? random.nextInt(6) : -1;
            requests.add(new EngineRequest(prompt(vocab, 2 + random.nextInt(60), 700 + i), params, true, logprobs,
                    -1));
            // Cancelled after reading 0 to 3 tokens; a request that ends first is not cancelled.
            cancelAfter[i] = random.nextInt(5) == 0 ? random.nextInt(4) : -1;
        }
        return requests;
    }

    /**
     * Runs the fixture's requests one at a time on one engine from {@code start}, then all together
     * on another, arriving at random, and checks the second against the first; {@code afterwards}
     * checks more of the second engine once they have ended.
     */
    static void assertEachEndsAsAlone(String fixture, Supplier<Engine> start, double logprobTolerance,
            Consumer<Engine> afterwards) throws InterruptedException {
        assertEachEndsAsAlone(fixture, start, start, logprobTolerance, afterwards);
    }

    /**
     * As above, the requests one at a time on an engine from {@code alone} and together on one from
     * {@code together} (another backend, say, held to the first one's answers).
     */
    static void assertEachEndsAsAlone(String fixture, Supplier<Engine> alone, Supplier<Engine> together,
            double logprobTolerance, Consumer<Engine> afterwards) throws InterruptedException {
        int vocab = TestModels.load(fixture).config().vocabSize();
        Random random = new Random(fixture.hashCode());
        int[] cancelAfter = new int[REQUESTS];
        List<EngineRequest> requests = requests(vocab, random, cancelAfter);
        List<EngineRuns.Outcome> aloneOutcomes = new ArrayList<>();
        try (Engine engine = alone.get()) {
            for (EngineRequest request : requests) {
                aloneOutcomes.add(run(engine, request));
            }
        }
        try (Engine engine = together.get()) {
            List<RequestStream> streams = new ArrayList<>();
            for (EngineRequest request : requests) {
                streams.add(engine.submit(request));
                if (random.nextInt(3) == 0) {
                    Thread.sleep(random.nextInt(3)); // arrivals while steps run, and between them
                }
            }
            List<List<Integer>> readBeforeCancel = new ArrayList<>();
            boolean[] endedBeforeCancel = new boolean[requests.size()];
            for (int i = 0; i < requests.size(); i++) {
                List<Integer> read = new ArrayList<>();
                for (int n = 0; n < cancelAfter[i]; n++) {
                    EngineEvent event = streams.get(i).next(60_000);
                    assertThat(event).as("an event within a minute").isNotNull();
                    if (!(event instanceof EngineEvent.Token token)) {
                        assertThat(event).isInstanceOf(EngineEvent.Finished.class);
                        endedBeforeCancel[i] = true; // its last event read: nothing to cancel
                        break;
                    }
                    read.add(token.id());
                }
                if (cancelAfter[i] >= 0) {
                    streams.get(i).cancel();
                }
                readBeforeCancel.add(read);
            }
            for (int i = 0; i < requests.size(); i++) {
                List<Integer> expected = aloneOutcomes.get(i).tokens();
                String what = fixture + ", request " + i + " " + requests.get(i).sampling();
                assertThat(aloneOutcomes.get(i).failed()).as(what).isNull();
                if (endedBeforeCancel[i]) {
                    assertThat(readBeforeCancel.get(i)).as(what).isEqualTo(expected);
                    continue;
                }
                EngineRuns.Outcome outcome = EngineRuns.collect(streams.get(i));
                if (cancelAfter[i] >= 0) {
                    List<Integer> tokens = new ArrayList<>(readBeforeCancel.get(i));
                    tokens.addAll(outcome.tokens());
                    assertThat(tokens.size()).as(what).isLessThanOrEqualTo(expected.size());
                    assertThat(tokens).as(what).isEqualTo(expected.subList(0, tokens.size()));
                    continue;
                }
                assertThat(outcome.failed()).as(what).isNull();
                assertThat(outcome.tokens()).as(what).isEqualTo(expected);
                assertThat(outcome.finished().reason()).as(what).isEqualTo(aloneOutcomes.get(i).finished().reason());
                EngineTest.assertSameLogprobs(outcome.logprobs(), aloneOutcomes.get(i).logprobs(), logprobTolerance);
            }
            EngineStats stats = EngineRuns.settledStats(engine);
            assertThat(stats.kvBlocksInUse()).as("blocks left behind").isZero();
            assertThat(stats.stateSlotsInUse()).as("slots left behind").isZero();
            assertThat(stats.runningRequests() + stats.waitingRequests()).isZero();
            afterwards.accept(engine);
            // The engine goes on: a request after them all gets its tokens alone.
            assertThat(run(engine, requests.getFirst()).tokens()).isEqualTo(aloneOutcomes.getFirst().tokens());
        }
    }
}
