package dev.coil.engine.bench;

import dev.coil.engine.runner.Backend;
import dev.coil.engine.runner.Backends;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.Engine;
import dev.coil.engine.runner.EngineEvent;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.engine.runner.EngineRequest;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.OutputGrammar;
import dev.coil.engine.runner.RequestStream;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.ScanPrecision;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * What holding the output to a grammar costs a decode step: requests one at a time, sampled, with no
 * grammar and with each kind of grammar, and their decode ms per token side by side. The grammars are
 * chosen so that the state differs at every step (a string's count of characters is part of it).
 * Each grammar runs twice: made anew for every request (a schema whose description differs), so
 * that every step walks the vocabulary, and the same for every request, as an application sends its
 * schema, so that the allowed sets the engine kept for its states serve again.
 *
 * <p>{@code coil bench --structured} runs it; so does {@link #main} where only the engine's jars are
 * (the GPU machine): arguments model folder, devices ({@code cpu}, {@code cuda:0}), max tokens, prompt
 * tokens, and requests at once (default 1; with more, each row's requests go in rounds of that many,
 * submitted together).
 */
public final class StructuredOutputBenchmark {

    /** A kind of grammar, whether it was the same for every request, and what its requests decoded. */
    public record Row(String grammar, boolean same, int requests, double meanTokens, double decodeMillisPerToken,
            int atOnce, double tokensPerSecond) {
    }

    /**
     * The grammars measured, by name: none; a JSON schema with a long string; one whose string has a
     * pattern; a regex; a GBNF grammar of sentences; a structural tag (free text in which each period
     * begins a tag holding the JSON schema's value, then free text again). (JSON mode is left out: a model may close its object at
     * once, "{}", so that its decode time is a step or two.)
     */
    public static final List<String> GRAMMARS = List.of("none", "json_schema", "pattern", "regex", "gbnf",
            "structural_tag");

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
    static final String GBNF = """
            root ::= sentence (" " sentence){0,9}
            sentence ::= word ((", " | " ") word){0,20} "."
            word ::= [A-Za-z]{1,12}
            """;

    /**
     * The structural tag, around the schema (%s): free text, and at each period a tag holding the
     * schema's value (a model writes periods often, so that its text passes from free text to JSON and
     * back; a tool call's "<" it would seldom write).
     */
    static final String STRUCTURAL_TAG = """
            {"type": "structural_tag", "format": {"type": "triggered_tags", "triggers": ["."],
             "tags": [{"begin": ".<tool>", "content": {"type": "json_schema", "json_schema": %s}, "end": "</tool>"}]}}""";

    private StructuredOutputBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        Path folder = Path.of(args.length > 0 ? args[0] : "models/coil-demo");
        Devices devices = Backends.resolve(Devices.parse(args.length > 1 ? args[1] : "cpu"));
        int maxTokens = args.length > 2 ? Integer.parseInt(args[2]) : 64;
        int promptTokens = args.length > 3 ? Integer.parseInt(args[3]) : 128;
        int atOnce = args.length > 4 ? Integer.parseInt(args[4]) : 1;
        try (LoadedModel loaded = LoadedModel.load(folder)) {
            System.out.println("model: " + folder + "; devices: " + devices);
            List<Row> rows = run(loaded, () -> Backends.open(devices, loaded, Runtime.getRuntime().availableProcessors(),
                    ScanPrecision.F32), EngineOptions.DEFAULTS, Math.max(8, 2 * atOnce), atOnce, promptTokens, maxTokens,
                    System.err::println);
            table(rows).forEach(System.out::println);
        }
    }

    /** The rows as a Markdown table, each grammar's decode time beside the figure without one. */
    public static List<String> table(List<Row> rows) {
        double plain = rows.getFirst().decodeMillisPerToken();
        boolean together = rows.getFirst().atOnce() > 1;
        List<String> lines = new ArrayList<>(List.of(together
                ? "| grammar | made | requests, " + rows.getFirst().atOnce() + " at once | mean generated tokens "
                        + "| decode ms/token | over no grammar | generated tokens/s |"
                : "| grammar | made | requests, one at a time | mean generated tokens | decode ms/token | over no grammar |",
                together ? "|---|---|---|---|---|---|---|" : "|---|---|---|---|---|---|"));
        for (Row row : rows) {
            String line = String.format(Locale.ROOT, "| %s | %s | %d | %.1f | %.3f | %+.3f ms |", row.grammar(),
                    row.grammar().equals("none") ? "" : row.same() ? "the same each request" : "anew each request",
                    row.requests(), row.meanTokens(), row.decodeMillisPerToken(), row.decodeMillisPerToken() - plain);
            lines.add(together ? line + String.format(Locale.ROOT, " %.0f |", row.tokensPerSecond()) : line);
        }
        return lines;
    }

    /**
     * {@code requests} requests a grammar, one at a time, each of a {@code promptTokens}-token random
     * prompt and up to {@code maxTokens} tokens at temperature 1 (seeded), after a warm-up of every
     * grammar; the engine runs on a backend from {@code backends}.
     */
    public static List<Row> run(LoadedModel loaded, Supplier<Backend> backends, EngineOptions options, int requests,
            int promptTokens, int maxTokens, Consumer<String> log) throws InterruptedException {
        return run(loaded, backends, options, requests, 1, promptTokens, maxTokens, log);
    }

    /**
     * As above, the requests in rounds of {@code atOnce} submitted together; a row's tokens/s is its
     * generated tokens over the time its rounds took.
     */
    public static List<Row> run(LoadedModel loaded, Supplier<Backend> backends, EngineOptions options, int requests,
            int atOnce, int promptTokens, int maxTokens, Consumer<String> log) throws InterruptedException {
        int vocab = loaded.config().vocabSize();
        List<Row> rows = new ArrayList<>();
        try (Engine engine = Engine.start(loaded, backends.get(), options.withPrefixCaching(false))) {
            log.accept("warming up...");
            for (String grammar : GRAMMARS) {
                decode(engine, grammar, -1, new SplittableRandom(1), vocab, promptTokens, 16);
            }
            for (String grammar : GRAMMARS) {
                for (boolean same : grammar.equals("none") ? new boolean[] {true} : new boolean[] {false, true}) {
                    log.accept("grammar " + grammar + (same ? ", the same each request" : ", new each request")
                            + "...");
                    SplittableRandom random = new SplittableRandom(5);
                    long generatedTotal = 0;
                    long decoded = 0;
                    double millis = 0;
                    long start = System.nanoTime();
                    for (int first = 0; first < requests; first += atOnce) {
                        List<RequestStream> round = new ArrayList<>();
                        for (int i = first; i < Math.min(requests, first + atOnce); i++) {
                            round.add(submit(engine, grammar, same ? -1 : rows.size() * 1000 + i, random, vocab,
                                    promptTokens, maxTokens));
                        }
                        for (RequestStream stream : round) {
                            EngineEvent.Finished finished = ServingBenchmark.collect(stream, new ArrayList<>(), null);
                            long generated = finished.usage().completionTokens();
                            generatedTotal += generated;
                            // The decode time covers the tokens after the first (which prefill drew).
                            if (generated > 1) {
                                millis += finished.timings().decodeMillis();
                                decoded += generated - 1;
                            }
                        }
                    }
                    double seconds = (System.nanoTime() - start) / 1e9;
                    rows.add(new Row(grammar, same, requests, (double) generatedTotal / requests,
                            decoded == 0 ? Double.NaN : millis / decoded, atOnce, generatedTotal / seconds));
                }
            }
        }
        return rows;
    }

    /** One request held to {@code grammar}, to its end; with {@code variant} 0 or more, a grammar no other request has. */
    private static EngineEvent.Finished decode(Engine engine, String grammar, int variant, SplittableRandom random,
            int vocab, int promptTokens, int maxTokens) throws InterruptedException {
        return ServingBenchmark.collect(submit(engine, grammar, variant, random, vocab, promptTokens, maxTokens),
                new ArrayList<>(), null);
    }

    /** One request held to {@code grammar}, submitted. */
    private static RequestStream submit(Engine engine, String grammar, int variant, SplittableRandom random,
            int vocab, int promptTokens, int maxTokens) {
        SamplingParams.Builder params = SamplingParams.builder().temperature(1.0).seed(random.nextLong())
                .maxTokens(maxTokens);
        // The variants say the same with another description, match zero times more, or add a comment.
        String description = variant < 0 ? "" : "\"description\": \"variant " + variant + "\", ";
        switch (grammar) {
            case "json_schema" -> params.grammar(OutputGrammar.jsonSchema("{" + description + SCHEMA.substring(1)));
            case "pattern" -> params.grammar(OutputGrammar.jsonSchema("{" + description + PATTERN.substring(1)));
            case "regex" -> params.grammar(OutputGrammar.regex(REGEX + (variant < 0 ? "" : "(?:" + variant + "){0}")));
            case "gbnf" -> params.grammar(OutputGrammar.grammar(GBNF + (variant < 0 ? "" : "# variant " + variant)));
            case "structural_tag" -> params.grammar(OutputGrammar.structuralTag(
                    STRUCTURAL_TAG.formatted("{" + description + SCHEMA.substring(1))));
            default -> { }
        }
        return engine.submit(new EngineRequest(random.ints(promptTokens, 1, vocab).toArray(), params.build(), false, -1,
                -1));
    }
}
