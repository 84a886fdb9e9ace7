package dev.coil.server.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.runner.Backends;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.Engine;
import dev.coil.engine.runner.EngineGenerator;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.runner.Generation;
import dev.coil.engine.runner.Generator;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.ScanPrecision;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Generates a continuation of a prompt, streaming the text to stdout. */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Continue a prompt; streams text to stdout, then prompt and decode tokens/s to stderr.")
public final class GenerateCommand implements Callable<Integer> {

    @Mixin
    ModelOptions modelOptions;

    @Mixin
    PromptOptions promptOptions;

    @Option(names = "--max-tokens", defaultValue = "128", description = "Tokens to generate at most (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 is greedy (default ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--top-p", defaultValue = "1", description = "Nucleus sampling mass (default ${DEFAULT-VALUE}: off).")
    double topP;

    @Option(names = "--top-k", defaultValue = "0", description = "Keep the k most likely tokens (default ${DEFAULT-VALUE}: off).")
    int topK;

    @Option(names = "--min-p", defaultValue = "0", description = "Drop tokens under min-p times the top probability (default off).")
    double minP;

    @Option(names = "--repetition-penalty", defaultValue = "1", description = "HF-style repetition penalty (default 1: off).")
    double repetitionPenalty;

    @Option(names = "--seed", description = "Random seed: the same seed gives the same tokens.")
    Long seed;

    @Option(names = "--stop", description = "Stop string (repeatable).")
    java.util.List<String> stop = new java.util.ArrayList<>();

    @Option(names = "--json",
            description = "Print one JSON object {token_ids, text, finish_reason, timings} instead of streaming.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        int threads = modelOptions.threads();
        ScanPrecision precision = modelOptions.scanPrecision();
        Devices devices = Backends.resolve(modelOptions.devices());
        try (LoadedModel model = modelOptions.load(devices)) {
            int[] prompt = promptOptions.tokens(model);
            SamplingParams params = SamplingParams.builder()
                    .temperature(temperature).topP(topP).topK(topK).minP(minP)
                    .repetitionPenalty(repetitionPenalty).seed(seed).stopStrings(stop).maxTokens(maxTokens)
                    .build();
            Generation result;
            if (devices.isCuda()) {
                // The GPU serves through the engine: one request, a cache sized for it.
                EngineOptions options = EngineOptions.DEFAULTS.withMaxSequences(1)
                        .withMaxBatchedTokens(Backends.defaultMaxBatchedTokens(devices));
                try (Engine engine = Engine.start(model, Backends.open(devices, model, threads, precision),
                        options)) {
                    result = new EngineGenerator(engine).generate(prompt, params, json ? delta -> { } : out::print);
                }
            } else {
                Backends.warnIfUnused(precision, devices);
                Generator generator = new Generator(model, new CpuOps(new Parallel(threads)));
                result = generator.generate(prompt, params, json ? delta -> { } : out::print);
            }
            if (json) {
                out.println(toJson(result));
            } else {
                out.println();
                System.err.printf("prompt: %s, %.1f tokens/s; decode: %s, %.1f tokens/s (%s)%n",
                        tokens(result.timings().promptTokens()), result.timings().prefillTokensPerSecond(),
                        tokens(result.tokenIds().length), result.timings().decodeTokensPerSecond(),
                        result.finishReason().apiName());
            }
        }
        return 0;
    }

    /** "1 token", "0 tokens", "12 tokens". */
    static String tokens(long count) {
        return count + (count == 1 ? " token" : " tokens");
    }

    static String toJson(Generation result) throws Exception {
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode root = mapper.createObjectNode();
        var ids = root.putArray("token_ids");
        for (int id : result.tokenIds()) {
            ids.add(id);
        }
        root.put("text", result.text());
        root.put("finish_reason", result.finishReason().apiName());
        ObjectNode timings = root.putObject("timings");
        timings.put("prompt_tokens", result.timings().promptTokens());
        timings.put("prefill_ms", result.timings().prefillMillis());
        timings.put("prefill_tokens_per_second", result.timings().prefillTokensPerSecond());
        timings.put("generated_tokens", result.tokenIds().length);
        timings.put("decode_ms", result.timings().decodeMillis());
        timings.put("decode_tokens_per_second", result.timings().decodeTokensPerSecond());
        return mapper.writeValueAsString(root);
    }
}
