package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineOverloadedException;
import io.javalin.http.Context;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** OpenAI error objects (Anthropic's under its Messages API), and how engine refusals become them. */
public final class ErrorResponses {

    /** "max_tokens must be ...", "top_p: ...": the message starts with the parameter's API name. */
    private static final Pattern LEADING_PARAMETER = Pattern.compile("^([a-z][a-z_]*)(?::| must | is | does )");

    private ErrorResponses() {
    }

    /** {@code {"error": {"message", "type", "param", "code"}}}. */
    public static ObjectNode body(ApiException error) {
        ObjectNode root = Json.object();
        ObjectNode body = root.putObject("error");
        body.put("message", error.getMessage());
        body.put("type", error.type());
        body.put("param", error.param());
        body.put("code", error.code());
        return root;
    }

    /**
     * Anthropic's error object, for the Messages API: {@code {"type": "error", "error": {"type",
     * "message"}}}, its type Anthropic's name for the status (invalid_request_error,
     * authentication_error, not_found_error, request_too_large, rate_limit_error, overloaded_error,
     * api_error).
     */
    public static ObjectNode anthropicBody(ApiException error) {
        String type = switch (error.status()) {
            case 401 -> "authentication_error";
            case 403 -> "permission_error";
            case 404 -> "not_found_error";
            case 413 -> "request_too_large";
            case 429 -> "rate_limit_error";
            case 503 -> "overloaded_error";
            default -> error.status() >= 500 ? "api_error" : "invalid_request_error";
        };
        ObjectNode root = Json.object().put("type", "error");
        root.putObject("error").put("type", type).put("message", error.getMessage());
        return root;
    }

    /**
     * Answers with the error's status and body (only while the response is not yet committed): Anthropic's
     * error object under /v1/messages, OpenAI's everywhere else.
     */
    public static void write(Context ctx, ApiException error) {
        Json.respond(ctx, error.status(), ctx.path().startsWith("/v1/messages") ? anthropicBody(error) : body(error));
    }

    /**
     * What an exception from {@code Engine.submit} or from building the request's sampling values
     * means for the client: a 400 naming the parameter, a 429, or a 503 while shutting down.
     *
     * @param promptParam the name the prompt has in this API ("prompt" or "messages")
     */
    public static ApiException fromEngine(RuntimeException error, String promptParam) {
        if (error instanceof ApiException api) {
            return api;
        }
        if (error instanceof EngineOverloadedException) {
            return ApiException.overloaded(error.getMessage());
        }
        if (error instanceof IllegalArgumentException) {
            return ApiException.invalid(parameterOf(error.getMessage(), promptParam), error.getMessage());
        }
        if (error instanceof IllegalStateException) {
            return ApiException.unavailable("shutting_down", error.getMessage());
        }
        throw error;
    }

    /**
     * The parameter an engine or sampling message is about: its leading API name ("top_p must be
     * ..."), the prompt for messages about the prompt or its tokens, else none.
     */
    static String parameterOf(String message, String promptParam) {
        if (message == null) {
            return null;
        }
        if (message.startsWith("prompt") || message.startsWith("the prompt")) {
            return promptParam;
        }
        Matcher matcher = LEADING_PARAMETER.matcher(message);
        return matcher.find() ? matcher.group(1) : null;
    }
}
