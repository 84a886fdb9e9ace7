package dev.coil.server.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.parallel.ContextParallelMode;
import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.parallel.RingScore;
import dev.coil.engine.parallel.ShardLayout;
import dev.coil.engine.parallel.ShardedModel;
import dev.coil.engine.parallel.ShardedModels;
import dev.coil.engine.runner.Backends;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.Engine;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.engine.runner.EngineScorer;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.ScanPrecision;
import dev.coil.engine.runner.ScoreResult;
import dev.coil.engine.runner.Scorer;
import dev.coil.engine.runner.TokenLogprob;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Prompt logprobs, as OpenAI's completions API returns with echo and logprobs. */
@Command(name = "score", mixinStandardHelpOptions = true,
        description = "Print {token_ids, logprobs, top_logprobs}: each token's logprob given the ones before it "
                + "(null for the first) and the K most likely tokens for the position after it.")
public final class ScoreCommand implements Callable<Integer> {

    @Mixin
    ModelOptions modelOptions;

    @Mixin
    PromptOptions promptOptions;

    @Mixin
    ContextParallelOptions contextParallelOptions;

    @Option(names = "--top-logprobs", defaultValue = "0", paramLabel = "K", description = "Alternatives per position (default ${DEFAULT-VALUE}).")
    int topLogprobs;

    @Override
    public Integer call() throws Exception {
        if (topLogprobs < 0) {
            throw new IllegalArgumentException("--top-logprobs must be 0 or more, got " + topLogprobs);
        }
        int threads = modelOptions.threads();
        ContextParallelMode mode = contextParallelOptions.mode();
        ShardLayout layout = contextParallelOptions.layout();
        Devices devices = Backends.resolve(modelOptions.devices());
        ScanPrecision precision = modelOptions.scanPrecision();
        try (LoadedModel model = modelOptions.load(devices)) {
            int[] ids = promptOptions.tokens(model);
            // Scoring is a request with max_tokens 0: the prompt may fill the context window but not pass
            // it, whichever path below runs it (as generate and the server refuse it, in the same words).
            model.generationLimit(ids.length, 0);
            ContextParallelism parallelism = ShardedModels.contextParallelism(model, devices, threads, mode, layout,
                    precision);
            try (ShardedModel sharded = parallelism.model()) {
                if (parallelism.shards(ids.length, true)) {
                    RingScore score = sharded.score(ids, topLogprobs, layout);
                    System.err.println("context parallel: " + String.join(", ", score.paths()) + ", " + layout
                            + " shards");
                    System.out.println(toJson(score.result()));
                    return 0;
                }
            }
            if (devices.isCuda()) {
                // The GPU serves through the engine: one request with prompt logprobs.
                try (Engine engine = Engine.start(model, Backends.open(devices, model, threads, precision),
                        EngineOptions.DEFAULTS.withMaxSequences(1).withPrefixCaching(false))) {
                    System.out.println(toJson(new EngineScorer(engine).score(ids, topLogprobs)));
                }
                return 0;
            }
            Backends.warnIfUnused(precision, devices);
            System.out.println(toJson(new Scorer(model, new CpuOps(new Parallel(threads)))
                    .score(ids, topLogprobs)));
        }
        return 0;
    }

    static String toJson(ScoreResult result) throws Exception {
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode root = mapper.createObjectNode();
        ArrayNode ids = root.putArray("token_ids");
        for (int id : result.tokenIds()) {
            ids.add(id);
        }
        ArrayNode logprobs = root.putArray("logprobs");
        for (int i = 0; i < result.tokenIds().length; i++) {
            if (i == 0) {
                logprobs.addNull();
            } else {
                logprobs.add(result.logprobs()[i]);
            }
        }
        ArrayNode ranks = root.putArray("ranks");
        for (int i = 0; i < result.tokenIds().length; i++) {
            if (i == 0) {
                ranks.addNull();
            } else {
                ranks.add(result.ranks()[i]);
            }
        }
        ArrayNode top = root.putArray("top_logprobs");
        for (List<TokenLogprob> position : result.topLogprobs()) {
            ArrayNode entries = top.addArray();
            for (TokenLogprob entry : position) {
                entries.addObject().put("id", entry.id()).put("logprob", entry.logprob());
            }
        }
        return mapper.writeValueAsString(root);
    }
}
