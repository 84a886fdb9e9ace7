package dev.coil.server.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** The server's JSON: strict on the way in (no NaN, no trailing garbage), plain on the way out. */
public final class Json {

    /** Parses request bodies: standard JSON only; NaN and Infinity literals are errors. */
    static final ObjectMapper READER = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    public static final ObjectMapper MAPPER = new ObjectMapper();

    private Json() {
    }

    public static ObjectNode object() {
        return MAPPER.createObjectNode();
    }

    /** The ids as a JSON array of numbers, from index {@code from} on. */
    static ArrayNode array(List<Integer> ids, int from) {
        ArrayNode array = MAPPER.createArrayNode();
        for (int i = from; i < ids.size(); i++) {
            array.add(ids.get(i));
        }
        return array;
    }

    /** The ids as a JSON array of numbers. */
    static ArrayNode array(int[] ids) {
        ArrayNode array = MAPPER.createArrayNode();
        for (int id : ids) {
            array.add(id);
        }
        return array;
    }

    public static String write(Object node) {
        try {
            return MAPPER.writeValueAsString(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("could not write JSON: " + e.getMessage(), e);
        }
    }

    /** {@code node} as UTF-8 JSON text, as the in-memory stores hold it. */
    static byte[] utf8(JsonNode node) {
        return write(node).getBytes(StandardCharsets.UTF_8);
    }

    /** JSON text that {@link #utf8} wrote, read back. */
    static JsonNode read(byte[] utf8) {
        try {
            return MAPPER.readTree(utf8);
        } catch (IOException e) {
            throw new UncheckedIOException("JSON text this server wrote did not read back", e);
        }
    }

    /** Answers with {@code node} as the body, UTF-8 encoded, and the given status. */
    public static void respond(Context ctx, int status, Object node) {
        ctx.status(status);
        ctx.contentType("application/json");
        ctx.result(write(node).getBytes(StandardCharsets.UTF_8));
    }

    /**
     * A logprob as JSON can carry it: impossible tokens (-infinity) become -9999, as vLLM reports
     * them, since JSON has no infinity.
     */
    static double logprob(float value) {
        return Float.isFinite(value) ? value : -9999.0;
    }
}
