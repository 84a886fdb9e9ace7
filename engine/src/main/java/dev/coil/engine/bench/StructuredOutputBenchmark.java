package dev.coil.engine.bench;

import dev.coil.engine.runner.Backend;
import dev.coil.engine.runner.Engine;
import dev.coil.engine.runner.EngineEvent;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.engine.runner.EngineRequest;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.OutputGrammar;
import dev.coil.engine.runner.RequestStream;
import dev.coil.engine.runner.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * What holding the output to a grammar costs a decode step: requests one at a time, sampled, with no
 * grammar and with each kind of grammar, and their decode ms per token side by side. The grammars are
 * chosen so that the state differs at every step (a string's count of characters is part of it), so
 * that most steps walk the vocabulary anew rather than finding the allowed tokens kept.
 */
public final class StructuredOutputBenchmark {

    /** A kind of grammar, and what its requests decoded. */
    public record Row(String grammar, int requests, double meanTokens, double decodeMillisPerToken) {
    }

    /**
     * The grammars measured, by name: none; a JSON schema with a long string; one whose string has a
     * pattern; a regex. (JSON mode is left out: a model may close its object at once, "{}", so that its
     * decode time is a step or two.)
     */
    public static final List<String> GRAMMARS = List.of("none", "json_schema", "pattern", "regex");

    static final String SCHEMA = """
            {"type": "object", "properties": {
               "title": {"type": "string", "maxLength": 200},
               "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
               "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 8}},
             "required": ["title", "year", "tags"]}""";
    static final String PATTERN = """
            {"type": "object", "properties": {"title": {"type": "string", "pattern": "^[A-Za-z ,.]{1,200}$"}},
             "required": ["title"]}""";
    static final String REGEX = "[A-Za-z ,.]{1,300}";

    private StructuredOutputBenchmark() {
    }

    /**
     * {@code requests} requests a grammar, one at a time, each of a {@code promptTokens}-token random
     * prompt and up to {@code maxTokens} tokens at temperature 1 (seeded), after a warm-up of every
     * grammar; the engine runs on a backend from {@code backends}.
     */
    public static List<Row> run(LoadedModel loaded, Supplier<Backend> backends, EngineOptions options, int requests,
            int promptTokens, int maxTokens, Consumer<String> log) throws InterruptedException {
        int vocab = loaded.config().vocabSize();
        List<Row> rows = new ArrayList<>();
        try (Engine engine = Engine.start(loaded, backends.get(), options.withPrefixCaching(false))) {
            log.accept("warming up...");
            for (String grammar : GRAMMARS) {
                decode(engine, grammar, new SplittableRandom(1), vocab, promptTokens, 16);
            }
            for (String grammar : GRAMMARS) {
                log.accept("grammar " + grammar + "...");
                SplittableRandom random = new SplittableRandom(5);
                long tokens = 0;
                double millis = 0;
                for (int i = 0; i < requests; i++) {
                    EngineEvent.Finished finished = decode(engine, grammar, random, vocab, promptTokens, maxTokens);
                    long generated = finished.usage().completionTokens();
                    tokens += generated;
                    // The decode time covers the tokens after the first (which prefill drew).
                    millis += generated > 1 ? finished.timings().decodeMillis() : 0;
                    tokens -= generated > 1 ? 1 : generated;
                }
                rows.add(new Row(grammar, requests, (double) (tokens + requests) / requests,
                        tokens == 0 ? Double.NaN : millis / tokens));
            }
        }
        return rows;
    }

    private static EngineEvent.Finished decode(Engine engine, String grammar, SplittableRandom random, int vocab,
            int promptTokens, int maxTokens) throws InterruptedException {
        SamplingParams.Builder params = SamplingParams.builder().temperature(1.0).seed(random.nextLong())
                .maxTokens(maxTokens);
        switch (grammar) {
            case "json_schema" -> params.grammar(OutputGrammar.jsonSchema(SCHEMA));
            case "pattern" -> params.grammar(OutputGrammar.jsonSchema(PATTERN));
            case "regex" -> params.grammar(OutputGrammar.regex(REGEX));
            default -> { }
        }
        RequestStream stream = engine.submit(new EngineRequest(random.ints(promptTokens, 1, vocab).toArray(),
                params.build(), false, -1, -1));
        while (true) {
            switch (stream.next()) {
                case EngineEvent.Finished finished -> {
                    return finished;
                }
                case EngineEvent.Failed failed -> throw new IllegalStateException(
                        "benchmark request failed: " + failed.message());
                default -> { }
            }
        }
    }
}
