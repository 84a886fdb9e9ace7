package dev.coil.server.api;

/**
 * A request the server answers with an OpenAI error object instead of a result:
 * {@code {"error": {"message", "type", "param", "code"}}} with the HTTP status.
 */
public final class ApiException extends RuntimeException {

    private final int status;
    private final String type;
    private final String param;
    private final String code;

    public ApiException(int status, String type, String param, String code, String message) {
        super(message, null, false, false);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400: a parameter is missing, of the wrong type or out of range; the message names it. */
    public static ApiException invalid(String param, String message) {
        return new ApiException(400, "invalid_request_error", param, null, message);
    }

    /** 400 about the request as a whole (its body, its JSON). */
    public static ApiException badRequest(String message) {
        return new ApiException(400, "invalid_request_error", null, null, message);
    }

    public static ApiException unauthorized() {
        return new ApiException(401, "invalid_request_error", null, "invalid_api_key",
                "missing or incorrect API key: send it as 'Authorization: Bearer <key>'");
    }

    public static ApiException notFound(String message) {
        return new ApiException(404, "invalid_request_error", null, "not_found", message);
    }

    /** 404 for a model id the server does not serve (OpenAI's code). */
    public static ApiException modelNotFound(String message) {
        return new ApiException(404, "invalid_request_error", null, "model_not_found", message);
    }

    public static ApiException methodNotAllowed(String message) {
        return new ApiException(405, "invalid_request_error", null, "method_not_allowed", message);
    }

    public static ApiException tooLarge(long limitBytes) {
        return new ApiException(413, "invalid_request_error", null, "request_too_large",
                "the request body is larger than the server's limit of " + limitBytes
                        + " bytes (--max-body-bytes)");
    }

    public static ApiException overloaded(String message) {
        return new ApiException(429, "rate_limit_exceeded", null, "server_overloaded", message);
    }

    public static ApiException unavailable(String code, String message) {
        return new ApiException(503, "service_unavailable", null, code, message);
    }

    public static ApiException internal(String message) {
        return new ApiException(500, "server_error", null, "internal_error", message);
    }

    public int status() {
        return status;
    }

    public String type() {
        return type;
    }

    public String param() {
        return param;
    }

    public String code() {
        return code;
    }
}
