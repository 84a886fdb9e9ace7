package dev.coil.server;

import dev.coil.server.api.ApiException;
import dev.coil.server.api.ApiKeyCheck;
import dev.coil.server.api.BackgroundResponses;
import dev.coil.server.api.ChatHandler;
import dev.coil.server.api.CompletionsHandler;
import dev.coil.server.api.ConversationStore;
import dev.coil.server.api.ConversationsHandler;
import dev.coil.server.api.ErrorResponses;
import dev.coil.server.api.GenerationRunner;
import dev.coil.server.api.InvocationsHandler;
import dev.coil.server.api.Json;
import dev.coil.server.api.MessagesHandler;
import dev.coil.server.api.ModelsHandler;
import dev.coil.server.api.ResponseStore;
import dev.coil.server.api.ResponsesHandler;
import dev.coil.server.api.StoredResponsesHandler;
import dev.coil.server.api.TokenizeHandlers;
import dev.coil.server.telemetry.Telemetry;
import io.javalin.Javalin;
import io.javalin.compression.CompressionStrategy;
import io.javalin.config.JavalinConfig;
import io.javalin.http.Context;
import io.javalin.http.HttpResponseException;
import io.javalin.http.HttpStatus;
import io.javalin.http.staticfiles.Location;
import io.javalin.util.JavalinBindException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.UnresolvedAddressException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.eclipse.jetty.server.handler.GracefulHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Coil's HTTP server on Javalin: the OpenAI-compatible API, tokenization, health, metrics and the
 * playground's static files. It listens before the model is loaded (/health answers 503 until
 * {@link #serve} is called) and shuts down in order: refuse new requests, let the engine finish or
 * cancel those in flight, stop listening.
 */
public final class CoilServer implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(CoilServer.class);

    /** Where the web module puts the playground on the classpath. */
    static final String WEB_FOLDER = "coil/web";

    /** How long shutdown waits, once the engine has ended every request, for their responses to be written. */
    static final Duration RESPONSE_DRAIN = Duration.ofSeconds(10);

    private static final String PLACEHOLDER_PAGE = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Coil</title></head>
            <body><h1>Coil</h1><p>The server is running. The API is under <code>/v1</code>: \
            <a href="/v1/models">/v1/models</a>, <code>POST /v1/completions</code>, \
            <code>POST /v1/chat/completions</code>. Health: <a href="/health">/health</a>.</p></body></html>
            """;

    private final ServerOptions options;
    private final ServerState state = new ServerState();
    private final Telemetry telemetry;
    private final AtomicBoolean stopped = new AtomicBoolean();
    private final Javalin app;

    private CoilServer(ServerOptions options, Telemetry telemetry) {
        this.options = options;
        this.telemetry = telemetry;
        telemetry.observe(() -> state.model().map(model -> model.engine().stats()).orElse(null));
        this.app = Javalin.create(this::configure);
    }

    /**
     * Starts listening; the model comes later through {@link #serve}.
     *
     * @throws UncheckedIOException "cannot listen on HOST:PORT: " and the cause (an unknown host, an
     *                              address this machine does not have, a port in use)
     */
    public static CoilServer start(ServerOptions options, Telemetry telemetry) {
        checkCanListen(options.host(), options.port());
        CoilServer server = new CoilServer(options, telemetry);
        try {
            server.app.start(options.host(), options.port());
        } catch (JavalinBindException e) {
            // Another process took the port between the check and now.
            throw cannotListen(options.host(), options.port(), e);
        }
        return server;
    }

    /**
     * Binds {@code host:port} and lets it go, as Jetty will bind it (SO_REUSEADDR on), so that a
     * failure is told once and with its cause. Jetty wraps every bind failure in "Failed to bind",
     * which Javalin logs as an error and reports as "Port already in use" whatever the cause: an
     * unknown host or an address of another machine too.
     */
    static void checkCanListen(String host, int port) {
        InetSocketAddress address = host == null ? new InetSocketAddress(port) : new InetSocketAddress(host, port);
        try (ServerSocketChannel channel = ServerSocketChannel.open()) {
            channel.setOption(StandardSocketOptions.SO_REUSEADDR, true);
            channel.bind(address);
        } catch (IOException | UnresolvedAddressException e) {
            throw cannotListen(host, port, e);
        }
    }

    /** "cannot listen on HOST:PORT: " and the innermost cause of {@code failure}. */
    private static UncheckedIOException cannotListen(String host, int port, Exception failure) {
        Throwable cause = failure;
        while (cause.getCause() != null && cause.getCause() != cause) {
            cause = cause.getCause();
        }
        String reason = cause instanceof UnresolvedAddressException ? "unknown host"
                : cause.getMessage() != null ? cause.getMessage() : cause.getClass().getSimpleName();
        String where = (host == null ? "*" : host.contains(":") ? "[" + host + "]" : host) + ":" + port;
        return new UncheckedIOException("cannot listen on " + where + ": " + reason,
                failure instanceof IOException io ? io : new IOException(failure));
    }

    /** The port listened on (the chosen one when the options said 0). */
    public int port() {
        return app.port();
    }

    public ServerState state() {
        return state;
    }

    /** Starts answering with this model. */
    public void serve(ServedModel model) {
        state.serve(model);
    }

    /**
     * Refuses new requests (503), gives those in flight the shutdown timeout to finish (then cancels
     * them), stops listening and releases the model. Idempotent.
     */
    public void shutdown() {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        state.drain();
        state.model().ifPresent(model -> model.stopEngine(options.shutdownTimeout()));
        // The engine has ended every request. Jetty's graceful stop (the GracefulHandler below) closes
        // the listener and waits for the responses still open: a whole answer is written after its
        // handler returns, and a slow client may still be reading it.
        app.stop();
        state.model().ifPresent(ServedModel::close);
        telemetry.close();
    }

    @Override
    public void close() {
        shutdown();
    }

    private void configure(JavalinConfig config) {
        config.startup.showJavalinBanner = false;
        config.concurrency.useVirtualThreads = true;
        config.http.maxRequestSize = options.maxBodyBytes();
        config.http.prefer405over404 = true;
        // Streams must reach the client chunk by chunk; compression would hold them back.
        config.http.compressionStrategy = CompressionStrategy.NONE;
        config.router.ignoreTrailingSlashes = true;
        config.jetty.modifyHttpConfiguration(http -> http.setSendServerVersion(false));
        config.jetty.modifyServer(server -> {
            server.setHandler(new GracefulHandler());
            server.setStopTimeout(RESPONSE_DRAIN.toMillis());
        });

        var runner = new GenerationRunner(state, telemetry, options.keepAlive().toMillis());
        var tokenize = new TokenizeHandlers(state, options.maxBodyBytes());
        config.routes.before(new ApiKeyCheck(options.apiKey()));
        config.routes.get("/health", this::health);
        // vLLM's /ping (what SageMaker probes), GET or POST: /health's answer.
        config.routes.get("/ping", this::health);
        config.routes.post("/ping", this::health);
        config.routes.get("/version", ctx -> Json.respond(ctx, 200, Json.object().put("version", VERSION)));
        config.routes.get("/metrics", this::metrics);
        var models = new ModelsHandler(state);
        config.routes.get("/v1/models", models::list);
        // <model>, not {model}: a served name may hold slashes ("org/model"), as clients send it.
        config.routes.get("/v1/models/<model>", models::retrieve);
        var completions = new CompletionsHandler(state, runner, options.maxBodyBytes(), options.reasoningParser());
        var chat = new ChatHandler(state, runner, options.maxBodyBytes(), options.toolCallParser(),
                options.reasoningParser());
        var responses = new ResponseStore(options.responseStoreBytes());
        var conversations = new ConversationStore(options.responseStoreBytes());
        var background = new BackgroundResponses();
        var responsesHandler = new ResponsesHandler(state, runner, options.maxBodyBytes(), options.toolCallParser(),
                options.reasoningParser(), responses, conversations, background);
        config.routes.post("/v1/completions", completions);
        config.routes.post("/v1/chat/completions", chat);
        config.routes.post("/v1/responses", responsesHandler);
        config.routes.post("/v1/responses/input_tokens", responsesHandler::inputTokens);
        // SageMaker's inference route (vLLM's): the body says which of the three it is.
        config.routes.post("/invocations", new InvocationsHandler(state, options.maxBodyBytes(), chat, completions,
                responsesHandler));
        // vLLM's /load: the generation requests in flight, for a load balancer.
        config.routes.get("/load", ctx -> Json.respond(ctx, 200, Json.object().put("server_load", state.inFlight())));
        var stored = new StoredResponsesHandler(responses, background, options.keepAlive().toMillis());
        config.routes.get("/v1/responses/{id}", stored::retrieve);
        config.routes.delete("/v1/responses/{id}", stored::delete);
        config.routes.get("/v1/responses/{id}/input_items", stored::inputItems);
        config.routes.post("/v1/responses/{id}/cancel", stored::cancel);
        var conversationRoutes = new ConversationsHandler(conversations, options.maxBodyBytes());
        config.routes.post("/v1/conversations", conversationRoutes::create);
        config.routes.get("/v1/conversations/{id}", conversationRoutes::retrieve);
        config.routes.post("/v1/conversations/{id}", conversationRoutes::update);
        config.routes.delete("/v1/conversations/{id}", conversationRoutes::delete);
        config.routes.post("/v1/conversations/{id}/items", conversationRoutes::addItems);
        config.routes.get("/v1/conversations/{id}/items", conversationRoutes::listItems);
        config.routes.get("/v1/conversations/{id}/items/{item_id}", conversationRoutes::retrieveItem);
        config.routes.delete("/v1/conversations/{id}/items/{item_id}", conversationRoutes::deleteItem);
        MessagesHandler messages = new MessagesHandler(state, runner, options.maxBodyBytes(), options.toolCallParser(),
                options.reasoningParser());
        config.routes.post("/v1/messages", messages::messages);
        config.routes.post("/v1/messages/count_tokens", messages::countTokens);
        config.routes.post("/tokenize", tokenize::tokenize);
        config.routes.post("/detokenize", tokenize::detokenize);

        config.routes.exception(ApiException.class, (error, ctx) -> ErrorResponses.write(ctx, error));
        config.routes.exception(HttpResponseException.class, (error, ctx) -> {
            if (error.getStatus() == HttpStatus.METHOD_NOT_ALLOWED.getCode()) {
                ctx.header("Allow", allowedMethods(error));
            }
            ErrorResponses.write(ctx, httpError(error.getStatus(), ctx));
        });
        config.routes.exception(Exception.class, (error, ctx) -> {
            LOG.error("{} {} failed", ctx.method(), ctx.path(), error);
            ErrorResponses.write(ctx, ApiException.internal("internal error: " + error));
        });

        if (CoilServer.class.getClassLoader().getResource(WEB_FOLDER + "/index.html") != null) {
            config.staticFiles.add(files -> {
                files.hostedPath = "/";
                files.directory = "/" + WEB_FOLDER;
                files.location = Location.CLASSPATH;
            });
        } else {
            config.routes.get("/", ctx -> ctx.html(PLACEHOLDER_PAGE));
        }
    }

    /** Coil's version, as the build wrote it into coil-version.properties ("unknown" without it). */
    static final String VERSION = readVersion();

    private static String readVersion() {
        try (var in = CoilServer.class.getResourceAsStream("/coil-version.properties")) {
            if (in == null) {
                return "unknown";
            }
            var properties = new java.util.Properties();
            properties.load(in);
            return properties.getProperty("version", "unknown");
        } catch (java.io.IOException e) {
            return "unknown";
        }
    }

    private void health(Context ctx) {
        String status = state.isReady() ? "ok" : state.model().isPresent() ? "shutting_down" : "loading";
        Json.respond(ctx, state.isReady() ? 200 : 503, Json.object().put("status", status));
    }

    private void metrics(Context ctx) {
        ctx.contentType(Telemetry.PROMETHEUS_CONTENT_TYPE).result(telemetry.scrape());
    }

    /**
     * The Allow header of a 405, which HTTP requires: the methods the path has routes for, which
     * Javalin lists in the exception's details ("GET,POST"; the key depends on whether the client
     * accepts HTML).
     */
    private static String allowedMethods(HttpResponseException error) {
        List<String> methods = new ArrayList<>();
        for (String listed : error.getDetails().values()) {
            for (String method : listed.split(",")) {
                if (!method.isBlank() && !methods.contains(method.strip())) {
                    methods.add(method.strip());
                }
            }
        }
        return String.join(", ", methods);
    }

    private static ApiException httpError(int status, Context ctx) {
        if (status == HttpStatus.NOT_FOUND.getCode()) {
            return ApiException.notFound("no route " + ctx.method() + " " + ctx.path());
        }
        if (status == HttpStatus.METHOD_NOT_ALLOWED.getCode()) {
            return ApiException.methodNotAllowed("method " + ctx.method() + " is not allowed on " + ctx.path());
        }
        if (status == HttpStatus.CONTENT_TOO_LARGE.getCode()) {
            return new ApiException(status, "invalid_request_error", null, "request_too_large", "the request is too large");
        }
        return new ApiException(status, status >= 500 ? "server_error" : "invalid_request_error", null, null,
                HttpStatus.forStatus(status).getMessage());
    }
}
