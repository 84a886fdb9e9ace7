package dev.coil.server.api;

import io.javalin.http.Context;
import io.javalin.http.Handler;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

/**
 * With an API key set, API routes answer 401 unless the request carries
 * {@code Authorization: Bearer <key>} (or Anthropic's {@code x-api-key: <key>}). /health, /ping,
 * /version and the playground's static files stay open.
 */
public final class ApiKeyCheck implements Handler {

    private final byte[] key;

    /** @param key the key, or null to let every request through */
    public ApiKeyCheck(String key) {
        this.key = key == null ? null : key.getBytes(StandardCharsets.UTF_8);
    }

    /** Routes the key guards: the OpenAI API, SageMaker's /invocations, tokenization, metrics and load. */
    public static boolean guards(String path) {
        return path.startsWith("/v1/") || path.equals("/v1") || path.startsWith("/tokenize")
                || path.startsWith("/detokenize") || path.startsWith("/metrics") || path.startsWith("/invocations")
                || path.startsWith("/load");
    }

    @Override
    public void handle(Context ctx) {
        if (key == null || !guards(ctx.path())) {
            return;
        }
        String header = ctx.header("Authorization");
        String prefix = "Bearer ";
        // Anthropic's clients send the key as x-api-key.
        String given = header != null && header.regionMatches(true, 0, prefix, 0, prefix.length())
                ? header.substring(prefix.length()) : ctx.header("x-api-key");
        if (given == null || !MessageDigest.isEqual(given.trim().getBytes(StandardCharsets.UTF_8), key)) {
            throw ApiException.unauthorized();
        }
    }
}
