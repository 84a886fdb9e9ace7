package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineOverloadedException;
import io.javalin.http.Context;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** OpenAI error objects, and how engine refusals become them. */
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

    /** Answers with the error's status and body (only while the response is not yet committed). */
    public static void write(Context ctx, ApiException error) {
        Json.respond(ctx, error.status(), body(error));
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
