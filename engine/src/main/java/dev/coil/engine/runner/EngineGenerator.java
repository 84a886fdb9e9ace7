package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * One request through a serving {@link Engine}, waited for: what {@link Generator} does for a
 * standalone sequence, for backends that only serve through the engine (the GPU).
 */
public final class EngineGenerator {

    private final Engine engine;

    public EngineGenerator(Engine engine) {
        this.engine = engine;
    }

    /** Generates from {@code prompt}, handing each piece of text to {@code onText} as it arrives. */
    public Generation generate(int[] prompt, SamplingParams params, Consumer<String> onText)
            throws InterruptedException {
        RequestStream stream = engine.submit(new EngineRequest(prompt, params, false, -1, -1));
        List<Integer> tokens = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        while (true) {
            switch (stream.next()) {
                case EngineEvent.Token token -> {
                    tokens.add(token.id());
                    text.append(token.text());
                    onText.accept(token.text());
                }
                case EngineEvent.Finished finished -> {
                    text.append(finished.text());
                    onText.accept(finished.text());
                    RequestTimings timings = finished.timings();
                    return new Generation(tokens.stream().mapToInt(Integer::intValue).toArray(), text.toString(),
                            finished.reason(), new Timings(timings.computedPromptTokens(), timings.prefillMillis(),
                                    timings.generatedTokens(), timings.decodeMillis()));
                }
                case EngineEvent.Failed failed -> throw new IllegalStateException(
                        "generation failed (" + failed.reason() + "): " + failed.message());
                case EngineEvent.PromptLogprobs ignored -> {
                }
            }
        }
    }
}
