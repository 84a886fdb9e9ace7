package dev.coil.server.cli;

import dev.coil.engine.load.ConfigJson;
import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.server.CoilServer;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerOptions;
import dev.coil.server.telemetry.Telemetry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * Serves a model over HTTP with the OpenAI API. Listens first, then loads the model (/health says
 * 503 until it is ready); SIGTERM or Ctrl-C drains and stops.
 */
@Command(name = "serve", mixinStandardHelpOptions = true, defaultValueProvider = ServingOptions.EngineDefaults.class,
        description = "Serve a model with an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, "
                + "/v1/models, /tokenize, /detokenize, /metrics, /health, /ping, /version) and the playground at /.")
public final class ServeCommand implements Callable<Integer> {

    @Mixin
    ServingOptions serving;

    @Parameters(index = "0", arity = "0..1", paramLabel = "MODEL",
            description = "The model, as --model takes it, in its place: coil serve ORG/NAME, as vllm serve takes it.")
    String model;

    @Spec
    CommandSpec spec;

    @Option(names = "--host", paramLabel = "HOST", defaultValue = "${env:COIL_HOST:-127.0.0.1}",
            description = "Address to listen on (default $COIL_HOST, else 127.0.0.1; 0.0.0.0 for every interface; "
                    + "the container images set COIL_HOST=0.0.0.0).")
    String host;

    @Option(names = "--port", paramLabel = "PORT", defaultValue = "8080", description = "TCP port (default ${DEFAULT-VALUE}; 0 picks a free one).")
    int port;

    @Option(names = "--api-key", paramLabel = "KEY", defaultValue = "${env:COIL_API_KEY}",
            description = "Require 'Authorization: Bearer KEY' on the API, tokenization and metrics routes "
                    + "(default: $COIL_API_KEY; none when unset).")
    String apiKey;

    /** Bytes a token of the context window may take in a request body: ids as JSON, or text with escapes. */
    static final long BODY_BYTES_PER_TOKEN = 16;

    @Option(names = "--max-body-bytes", paramLabel = "BYTES",
            description = "Largest request body; larger ones get 413 (default: 2 MB, or 16 bytes a token of the "
                    + "served context window where that is more, so that a prompt the window holds is never "
                    + "refused for its size).")
    Long maxBodyBytes;

    @Option(names = "--shutdown-timeout", paramLabel = "SECONDS", defaultValue = "30",
            description = "On SIGTERM, how long requests in flight may run before they are cancelled (default ${DEFAULT-VALUE}).")
    double shutdownSeconds;

    @Option(names = "--sse-keep-alive", paramLabel = "SECONDS", defaultValue = "15",
            description = "A stream without events for this long gets a keep-alive comment (default ${DEFAULT-VALUE}).")
    double keepAliveSeconds;

    @Override
    public Integer call() throws Exception {
        if (model != null) {
            serving.modelOptions.givenInPlace(model, spec.commandLine().getParseResult().hasMatchedOption("--model"));
        }
        Devices devices = serving.devices();
        EngineOptions engineOptions = serving.engineOptions(devices);
        long bodyLimit = maxBodyBytes != null ? maxBodyBytes
                : defaultMaxBodyBytes(serving.modelOptions.configurationFolder(), engineOptions.maxModelLength());
        ServerOptions serverOptions = new ServerOptions(host, port, apiKey, bodyLimit, seconds(keepAliveSeconds,
                "--sse-keep-alive"), seconds(shutdownSeconds, "--shutdown-timeout"), serving.toolCallFormat(),
                serving.reasoningFormat(), serving.responseStoreBytes());
        ServingOptions.Loading loading = serving.loading(devices, engineOptions);
        CoilServer server = CoilServer.start(serverOptions, Telemetry.fromEnvironment());
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.err.println("coil: shutting down");
            server.shutdown();
            stopped.countDown();
        }, "coil-shutdown"));
        String url = "http://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + server.port();
        System.err.println("coil: listening on " + url + "; loading " + serving.modelOptions.description());
        ServedModel model = loading.load();
        server.serve(model);
        System.err.printf("coil: serving %s (%d-token context) on %s at %s/v1%s%n", model.name(),
                model.contextLength(), model.engine().backendDescription(), url,
                serverOptions.apiKey() != null ? " (API key required)" : "");
        ContextParallelism parallelism = model.engine().contextParallelism();
        if (parallelism.model() != null) {
            System.err.println("coil: context parallel: " + parallelism);
        }
        stopped.await();
        return 0;
    }

    /**
     * 2 MB, or {@link #BODY_BYTES_PER_TOKEN} a token of the context window served ({@code maxModelLength},
     * else the folder's config.json max_position_embeddings) where that is more: a million-token window
     * takes 16 MB. Read before the model loads; a folder without a readable config.json gets 2 MB (its
     * load fails with the reason after).
     */
    static long defaultMaxBodyBytes(Path folder, int maxModelLength) {
        long window = maxModelLength;
        if (window <= 0) {
            Path config = folder.resolve("config.json");
            try {
                window = Files.isRegularFile(config)
                        ? ConfigJson.getLong(ConfigJson.read(config), "max_position_embeddings", 0) : 0;
            } catch (RuntimeException e) {
                window = 0;
            }
        }
        return Math.max(ServerOptions.DEFAULT_MAX_BODY_BYTES, BODY_BYTES_PER_TOKEN * window);
    }

    private static Duration seconds(double value, String option) {
        if (!(value >= 0) || Double.isInfinite(value)) {
            throw new IllegalArgumentException(option + " must be a number of seconds >= 0, got " + value);
        }
        return Duration.ofNanos(Math.round(value * 1e9));
    }
}
