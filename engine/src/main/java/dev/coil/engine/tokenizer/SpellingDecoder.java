package dev.coil.engine.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A tokenizer.json decoder read as the steps it takes on one token's spelling, to find the bytes the
 * token adds to a text it follows. Byte-level BPE (GPT-2's scheme) spells bytes as printable characters;
 * SentencePiece-style vocabularies spell a space as "▁" and bytes no piece holds as "&lt;0xE6&gt;"
 * (byte fallback). Decoding a token alone does not show them: a byte alone decodes to U+FFFD, and a
 * leading "▁" is dropped at the start of a text (the Strip and Metaspace decoders), where after other
 * tokens it is a space.
 *
 * <p>The steps understood are those of Hugging Face tokenizers' ByteLevel, Replace (of a string),
 * ByteFallback, Fuse, Strip and Metaspace decoders, alone or in a Sequence; a decoder with any other step
 * (WordPiece, BPEDecoder, CTC, a Replace of a regex) has none, and its tokens are read by decoding them.
 * Each step works on the token's bytes: UTF-8 keeps a character's bytes apart from any other's, so a
 * replacement of whole characters is the same on bytes as on text, and a token holding part of a
 * character can go on through the steps after the one that made it.
 */
final class SpellingDecoder {

    /** One decoder step on a token's bytes: the bytes after it, or null where it cannot read them. */
    private interface Step {
        byte[] apply(byte[] token);
    }

    private final List<Step> steps;

    private SpellingDecoder(List<Step> steps) {
        this.steps = steps;
    }

    /** The steps of a tokenizer.json {@code decoder}, or null when it is missing or has a step not understood. */
    static SpellingDecoder of(JsonNode decoder) {
        List<Step> steps = new ArrayList<>();
        if (!addSteps(decoder, steps, new boolean[1]) || steps.isEmpty()) {
            return null;
        }
        return new SpellingDecoder(List.copyOf(steps));
    }

    /**
     * The bytes a token spelled {@code spelling} in the model's vocabulary adds to a text it follows, or
     * null when a step cannot read it (a ByteLevel spelling with a character outside the scheme).
     */
    byte[] bytes(String spelling) {
        byte[] token = spelling.getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < steps.size() && token != null; i++) {
            token = steps.get(i).apply(token);
        }
        return token;
    }

    /** Adds the steps of {@code decoder}; {@code fused[0]} is whether a Fuse came before. False for a step not read. */
    private static boolean addSteps(JsonNode decoder, List<Step> steps, boolean[] fused) {
        switch (decoder.path("type").asText()) {
            case "Sequence" -> {
                for (JsonNode step : decoder.path("decoders")) {
                    if (!addSteps(step, steps, fused)) {
                        return false;
                    }
                }
                return true;
            }
            case "ByteLevel" -> steps.add(token -> ByteLevelBytes.bytes(new String(token, StandardCharsets.UTF_8)));
            case "Replace" -> {
                JsonNode pattern = decoder.path("pattern").path("String");
                if (!pattern.isTextual() || pattern.asText().isEmpty() || !decoder.path("content").isTextual()) {
                    return false;
                }
                byte[] from = pattern.asText().getBytes(StandardCharsets.UTF_8);
                byte[] to = decoder.path("content").asText().getBytes(StandardCharsets.UTF_8);
                steps.add(token -> replace(token, from, to));
            }
            case "Metaspace" -> {
                // After the first token of a text, every replacement character is a space.
                byte[] from = decoder.path("replacement").asText("\u2581").getBytes(StandardCharsets.UTF_8);
                byte[] space = {' '};
                steps.add(token -> replace(token, from, space));
            }
            case "ByteFallback" -> steps.add(token -> {
                int b = fallbackByte(token);
                return b < 0 ? token : new byte[] {(byte) b};
            });
            // Joins the tokens into one: nothing to do on one token, but a Strip after it strips the text's ends.
            case "Fuse" -> fused[0] = true;
            case "Strip" -> {
                byte[] content = decoder.path("content").asText(" ").getBytes(StandardCharsets.UTF_8);
                int start = decoder.path("start").asInt(0);
                int stop = decoder.path("stop").asInt(0);
                // Once fused, the Strip takes the text's first and last characters, none of a token inside it.
                if (!fused[0]) {
                    steps.add(token -> strip(token, content, start, stop));
                }
            }
            default -> {
                return false;
            }
        }
        return true;
    }

    /** The byte a "&lt;0xHH&gt;" token stands for, or -1 when the token is not spelled so. */
    private static int fallbackByte(byte[] token) {
        if (token.length != 6 || token[0] != '<' || token[1] != '0' || token[2] != 'x' || token[5] != '>') {
            return -1;
        }
        int high = Character.digit(token[3], 16);
        int low = Character.digit(token[4], 16);
        return high < 0 || low < 0 ? -1 : high * 16 + low;
    }

    private static byte[] replace(byte[] token, byte[] from, byte[] to) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(token.length);
        int i = 0;
        while (i < token.length) {
            if (startsAt(token, i, from)) {
                out.writeBytes(to);
                i += from.length;
            } else {
                out.write(token[i++]);
            }
        }
        return out.toByteArray();
    }

    /** {@code token} without up to {@code start} leading and {@code stop} trailing copies of {@code content}. */
    private static byte[] strip(byte[] token, byte[] content, int start, int stop) {
        int from = 0;
        for (int n = 0; n < start && startsAt(token, from, content); n++) {
            from += content.length;
        }
        int to = token.length;
        for (int n = 0; n < stop && to - content.length >= from && startsAt(token, to - content.length, content); n++) {
            to -= content.length;
        }
        return Arrays.copyOfRange(token, from, to);
    }

    private static boolean startsAt(byte[] token, int at, byte[] part) {
        if (at + part.length > token.length) {
            return false;
        }
        for (int i = 0; i < part.length; i++) {
            if (token[at + i] != part[i]) {
                return false;
            }
        }
        return true;
    }
}
