package dev.coil.server.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Reads a request body as one JSON object: at most --max-body-bytes (413 beyond), strictly UTF-8,
 * standard JSON. Every way a body can be wrong is a 400 with a sentence saying which.
 */
public final class JsonBody {

    private JsonBody() {
    }

    public static ObjectNode read(Context ctx, long maxBytes) {
        long declared = ctx.req().getContentLengthLong();
        if (declared > maxBytes) {
            throw ApiException.tooLarge(maxBytes);
        }
        byte[] bytes;
        try {
            bytes = readAtMost(ctx.req().getInputStream(), maxBytes);
        } catch (IOException e) {
            throw ApiException.badRequest("could not read the request body: " + e.getMessage());
        }
        return parse(bytes);
    }

    static ObjectNode parse(byte[] bytes) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw ApiException.badRequest("the request body is not valid UTF-8");
        }
        if (text.isBlank()) {
            throw ApiException.badRequest("the request body is empty; send a JSON object");
        }
        JsonNode node;
        try {
            node = Json.READER.readTree(text);
        } catch (JsonProcessingException e) {
            String where = e.getLocation() == null ? ""
                    : " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")";
            throw ApiException.badRequest("the request body is not valid JSON: "
                    + withoutParserHint(e.getOriginalMessage()) + where);
        }
        if (!(node instanceof ObjectNode object)) {
            throw ApiException.badRequest("the request body must be a JSON object, got " + Fields.typeName(node));
        }
        requireWholeCharacters(object);
        return object;
    }

    /**
     * Jackson's message less its advice to the caller of its API ("enable `JsonReadFeature...` to
     * allow"), which a client of the server cannot follow: {@code Non-standard token 'NaN'} stays.
     */
    private static String withoutParserHint(String message) {
        int hint = message.indexOf(": enable `");
        return hint < 0 ? message : message.substring(0, hint);
    }

    /**
     * A JSON escape (backslash, u, then D800 to DFFF) can spell half of a UTF-16 surrogate pair, which is no
     * character at all; such text cannot be tokenized faithfully, so it is refused like invalid UTF-8.
     */
    private static void requireWholeCharacters(JsonNode node) {
        if (node.isTextual()) {
            requireWholeCharacters(node.textValue());
        } else if (node.isObject()) {
            for (var field : node.properties()) {
                requireWholeCharacters(field.getKey());
                requireWholeCharacters(field.getValue());
            }
        } else if (node.isArray()) {
            for (JsonNode item : node) {
                requireWholeCharacters(item);
            }
        }
    }

    private static void requireWholeCharacters(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw ApiException.badRequest(String.format("the request body holds an unpaired surrogate "
                        + "(\\u%04x), which is not a Unicode character", (int) c));
            }
        }
    }

    private static byte[] readAtMost(InputStream in, long maxBytes) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buffer = new byte[16384];
        long total = 0;
        int read;
        while ((read = in.read(buffer)) != -1) {
            total += read;
            if (total > maxBytes) {
                throw ApiException.tooLarge(maxBytes);
            }
            out.write(buffer, 0, read);
        }
        return out.toByteArray();
    }
}
