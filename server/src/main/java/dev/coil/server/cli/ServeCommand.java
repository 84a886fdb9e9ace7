package dev.coil.server.cli;

import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.server.CoilServer;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerOptions;
import dev.coil.server.telemetry.Telemetry;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

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

    @Option(names = "--max-body-bytes", paramLabel = "BYTES", defaultValue = "2097152",
            description = "Largest request body; larger ones get 413 (default ${DEFAULT-VALUE}, 2 MB).")
    long maxBodyBytes;

    @Option(names = "--shutdown-timeout", paramLabel = "SECONDS", defaultValue = "30",
            description = "On SIGTERM, how long requests in flight may run before they are cancelled (default ${DEFAULT-VALUE}).")
    double shutdownSeconds;

    @Option(names = "--sse-keep-alive", paramLabel = "SECONDS", defaultValue = "15",
            description = "A stream without events for this long gets a keep-alive comment (default ${DEFAULT-VALUE}).")
    double keepAliveSeconds;

    @Override
    public Integer call() throws Exception {
        Devices devices = serving.devices();
        EngineOptions engineOptions = serving.engineOptions(devices);
        ServerOptions serverOptions = new ServerOptions(host, port, apiKey, maxBodyBytes, seconds(keepAliveSeconds,
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
        System.err.println("coil: listening on " + url + "; loading " + serving.modelOptions.folder());
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

    private static Duration seconds(double value, String option) {
        if (!(value >= 0) || Double.isInfinite(value)) {
            throw new IllegalArgumentException(option + " must be a number of seconds >= 0, got " + value);
        }
        return Duration.ofNanos(Math.round(value * 1e9));
    }
}
