package dev.coil.server;

import dev.coil.server.api.ReasoningFormat;
import dev.coil.server.api.ToolCallFormat;
import java.time.Duration;

/**
 * How the HTTP server listens and guards itself.
 *
 * @param host             address to bind (127.0.0.1: this machine only; 0.0.0.0: every interface)
 * @param port             TCP port; 0 picks a free one
 * @param apiKey           the key clients must send as a Bearer token, or null for none
 * @param maxBodyBytes     larger request bodies are refused with 413
 * @param keepAlive        a streamed response that has sent nothing for this long gets an SSE comment
 * @param shutdownTimeout  on SIGTERM, how long requests in flight may take to finish before they are cancelled
 * @param toolCallParser   the format of the served model's own tool calls, read out of answers to
 *                         tool_choice "auto"; null: "auto" is refused
 * @param reasoningParser  the format of the served model's reasoning, split off its chat answers; or null
 * @param responseStoreBytes the Responses API's stored responses, as JSON text, at most (0: none stored)
 */
public record ServerOptions(String host, int port, String apiKey, long maxBodyBytes, Duration keepAlive,
        Duration shutdownTimeout, ToolCallFormat toolCallParser, ReasoningFormat reasoningParser,
        long responseStoreBytes) {

    public static final long DEFAULT_MAX_BODY_BYTES = 2L * 1024 * 1024;
    public static final long DEFAULT_RESPONSE_STORE_BYTES = 64L * 1024 * 1024;

    public ServerOptions {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("--port must be in [0, 65535], got " + port);
        }
        if (maxBodyBytes <= 0) {
            throw new IllegalArgumentException("--max-body-bytes must be positive, got " + maxBodyBytes);
        }
        if (keepAlive.isNegative() || keepAlive.isZero()) {
            throw new IllegalArgumentException("the SSE keep-alive interval must be positive, got " + keepAlive);
        }
        if (shutdownTimeout.isNegative()) {
            throw new IllegalArgumentException("--shutdown-timeout must be >= 0, got " + shutdownTimeout);
        }
        if (responseStoreBytes < 0) {
            throw new IllegalArgumentException("--response-store must be >= 0, got " + responseStoreBytes);
        }
        if (apiKey != null && apiKey.isBlank()) {
            apiKey = null;
        }
    }

    /** Listening on {@code host:port}, no key, the default limits. */
    public static ServerOptions defaults(String host, int port) {
        return new ServerOptions(host, port, null, DEFAULT_MAX_BODY_BYTES, Duration.ofSeconds(15), Duration.ofSeconds(30),
                null, null, DEFAULT_RESPONSE_STORE_BYTES);
    }

    public ServerOptions withApiKey(String value) {
        return new ServerOptions(host, port, value, maxBodyBytes, keepAlive, shutdownTimeout, toolCallParser,
                reasoningParser, responseStoreBytes);
    }

    public ServerOptions withMaxBodyBytes(long value) {
        return new ServerOptions(host, port, apiKey, value, keepAlive, shutdownTimeout, toolCallParser,
                reasoningParser, responseStoreBytes);
    }

    public ServerOptions withKeepAlive(Duration value) {
        return new ServerOptions(host, port, apiKey, maxBodyBytes, value, shutdownTimeout, toolCallParser,
                reasoningParser, responseStoreBytes);
    }

    public ServerOptions withShutdownTimeout(Duration value) {
        return new ServerOptions(host, port, apiKey, maxBodyBytes, keepAlive, value, toolCallParser,
                reasoningParser, responseStoreBytes);
    }

    public ServerOptions withToolCallParser(ToolCallFormat value) {
        return new ServerOptions(host, port, apiKey, maxBodyBytes, keepAlive, shutdownTimeout, value,
                reasoningParser, responseStoreBytes);
    }

    public ServerOptions withReasoningParser(ReasoningFormat value) {
        return new ServerOptions(host, port, apiKey, maxBodyBytes, keepAlive, shutdownTimeout, toolCallParser, value,
                responseStoreBytes);
    }

    public ServerOptions withResponseStoreBytes(long value) {
        return new ServerOptions(host, port, apiKey, maxBodyBytes, keepAlive, shutdownTimeout, toolCallParser,
                reasoningParser, value);
    }
}
