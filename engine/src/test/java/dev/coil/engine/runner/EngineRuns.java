package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.model.Fixtures;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

/** Test helpers: read a request's events to the end, make prompts. */
final class EngineRuns {

    /** Everything one request produced. */
    record Outcome(List<Integer> tokens, String text, List<EngineEvent.PositionLogprobs> logprobs,
            EngineEvent.PromptLogprobs promptLogprobs, EngineEvent.Finished finished, EngineEvent.Failed failed) {

        int[] tokenArray() {
            return tokens.stream().mapToInt(Integer::intValue).toArray();
        }
    }

    private EngineRuns() {
    }

    static Outcome collect(RequestStream stream) {
        List<Integer> tokens = new ArrayList<>();
        List<EngineEvent.PositionLogprobs> logprobs = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        EngineEvent.PromptLogprobs prompt = null;
        try {
            while (true) {
                EngineEvent event = stream.next(60_000);
                assertThat(event).as("an event within a minute").isNotNull();
                switch (event) {
                    case EngineEvent.PromptLogprobs p -> prompt = p;
                    case EngineEvent.Token token -> {
                        tokens.add(token.id());
                        text.append(token.text());
                        if (token.logprobs() != null) {
                            logprobs.add(token.logprobs());
                        }
                    }
                    case EngineEvent.Finished finished -> {
                        text.append(finished.text());
                        return new Outcome(tokens, text.toString(), logprobs, prompt, finished, null);
                    }
                    case EngineEvent.Failed failed -> {
                        return new Outcome(tokens, text.toString(), logprobs, prompt, null, failed);
                    }
                }
            }
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    /**
     * The engine's stats once its step thread has settled after the last request ended (stats are
     * published after each step, a moment after the step's events).
     */
    static EngineStats settledStats(Engine engine) throws InterruptedException {
        EngineStats stats = engine.stats();
        for (int i = 0; i < 500 && (stats.runningRequests() + stats.waitingRequests() > 0 || stats.kvBlocksInUse() > 0
                || stats.stateSlotsInUse() > 0); i++) {
            Thread.sleep(10);
            stats = engine.stats();
        }
        return stats;
    }

    static Outcome run(Engine engine, EngineRequest request) {
        return collect(engine.submit(request));
    }

    static int[] prompt(int vocab, int length, long seed) {
        Random random = new Random(seed);
        int[] ids = new int[length];
        for (int i = 0; i < length; i++) {
            ids[i] = 1 + random.nextInt(vocab - 1);
        }
        return ids;
    }

    static int[] concat(int[] a, int[] b) {
        int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /**
     * A fixture's files copied into {@code folder}, with generation_config.json naming {@code endOfSequenceId}
     * as the model's only end-of-sequence token, and loaded (the caller closes it).
     */
    static LoadedModel withEndOfSequence(String fixture, int endOfSequenceId, Path folder) {
        try (Stream<Path> files = Files.list(Fixtures.folder(fixture))) {
            for (Path file : files.toList()) {
                Files.copy(file, folder.resolve(file.getFileName()), StandardCopyOption.REPLACE_EXISTING);
            }
            Files.writeString(folder.resolve("generation_config.json"), "{\"eos_token_id\": " + endOfSequenceId + "}");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return LoadedModel.load(folder);
    }

    /**
     * Each request alone, one after another, then all of them at once, in one engine: each gets the
     * same tokens and the same logprobs bit for bit (--batch-invariant's promise).
     */
    static void assertAloneAndTogetherAlike(Engine engine, List<EngineRequest> requests) {
        List<Outcome> alone = new ArrayList<>();
        for (EngineRequest request : requests) {
            alone.add(run(engine, request));
        }
        List<RequestStream> streams = new ArrayList<>();
        for (EngineRequest request : requests) {
            streams.add(engine.submit(request));
        }
        for (int i = 0; i < requests.size(); i++) {
            Outcome together = collect(streams.get(i));
            assertThat(together.failed()).as("request %d", i).isNull();
            assertThat(together.tokenArray()).as("request %d's tokens", i).containsExactly(alone.get(i).tokenArray());
            EngineTest.assertSameLogprobs(together.logprobs(), alone.get(i).logprobs(), 0.0);
        }
    }

    static EngineRequest greedy(int[] prompt, int maxTokens, int logprobs) {
        return new EngineRequest(prompt, SamplingParams.greedy().withMaxTokens(maxTokens), true, logprobs, -1);
    }
}
