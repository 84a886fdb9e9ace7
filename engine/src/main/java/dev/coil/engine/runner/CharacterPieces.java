package dev.coil.engine.runner;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The vocabulary's tokens that hold part of a character's UTF-8, with their bytes. A byte-level
 * vocabulary spells a character it lacks whole as several such tokens (every byte is a token), and
 * each decodes alone to U+FFFD, which a grammar reading text cannot place: where a grammar asks for
 * such a character (a pattern, an enum, a choice with 😀 or 日本 in them, on a vocabulary without those
 * tokens), no whole token continues the output, and the pieces are the only way on.
 *
 * <p>A constraint holds the bytes of the character begun and not yet finished ("pending"); a piece is
 * allowed when the pending bytes and its own are UTF-8 whose whole characters the grammar takes and
 * whose last, unfinished character begins at least one character the grammar takes next (the
 * characters with given leading bytes are one range of code points, tried until one is taken).
 */
final class CharacterPieces {

    static final byte[] NONE_PENDING = new byte[0];
    static final CharacterPieces NONE = new CharacterPieces(new int[0], new byte[0][]);

    /** Where a token's bytes lead after the pending ones: the characters they finish, and those they begin. */
    record Step(String text, byte[] pending) {
    }

    /** Pieces whose bytes alone finish the same characters and begin the same bytes: tried once for all. */
    private record Alike(Step step, int[] tokens) {
    }

    private final int[] tokens;
    private final byte[][] bytes;
    private final Map<Integer, byte[]> bytesOfToken = new HashMap<>();
    /** The pieces that may come between characters (none pending), by what their bytes do there. */
    private final List<Alike> betweenCharacters = new ArrayList<>();

    /** @param tokens the pieces' ids; {@code bytes[i]}: the bytes token {@code tokens[i]} stands for */
    CharacterPieces(int[] tokens, byte[][] bytes) {
        this.tokens = tokens.clone();
        this.bytes = bytes.clone();
        Map<String, List<Integer>> alike = new java.util.LinkedHashMap<>();
        Map<String, Step> steps = new HashMap<>();
        for (int i = 0; i < tokens.length; i++) {
            bytesOfToken.put(tokens[i], bytes[i]);
            Step step = step(NONE_PENDING, bytes[i]);
            if (step != null) {
                String key = key(step);
                alike.computeIfAbsent(key, unused -> new ArrayList<>()).add(tokens[i]);
                steps.put(key, step);
            }
        }
        alike.forEach((key, ids) -> betweenCharacters.add(new Alike(steps.get(key),
                ids.stream().mapToInt(Integer::intValue).toArray())));
    }

    /** The characters a step finishes, then (after a separator no text holds) the bytes it begins. */
    private static String key(Step step) {
        return step.text() + '\uFFFF' + new String(step.pending(), java.nio.charset.StandardCharsets.ISO_8859_1);
    }

    /** Bytes that are not whole UTF-8 text: a token that holds them is a piece. */
    static boolean incomplete(byte[] bytes) {
        Step step = step(NONE_PENDING, bytes);
        return step == null || step.pending().length > 0;
    }

    int size() {
        return tokens.length;
    }

    /**
     * The most UTF-16 units any piece adds to a text (0 for none): for each byte that begins a
     * character, one (two past U+FFFF), and two for the character begun before it that it may finish.
     */
    int mostCharacters() {
        int most = 0;
        for (byte[] piece : bytes) {
            int units = 2;
            for (byte b : piece) {
                units += (b & 0xC0) == 0x80 ? 0 : (b & 0xF8) == 0xF0 ? 2 : 1;
            }
            most = Math.max(most, units);
        }
        return most;
    }

    /** The bytes of piece {@code token}, or null when it is none. */
    byte[] bytesOf(int token) {
        return bytesOfToken.get(token);
    }

    /**
     * The pieces allowed at {@code state} with {@code pending} bytes of a character begun, as bits
     * (bit id % 32 of word id / 32) over a vocabulary of {@code vocabularySize} tokens.
     */
    int[] allowedBits(GrammarState state, byte[] pending, int vocabularySize) {
        int[] bits = new int[(vocabularySize + 31) / 32];
        List<GrammarFrame> scratch = new ArrayList<>();
        Map<String, GrammarState> fed = new HashMap<>(); // many pieces finish the same characters (a space)
        if (pending.length == 0) {
            for (Alike alike : betweenCharacters) {
                if (allowed(state, alike.step(), fed, scratch)) {
                    for (int token : alike.tokens()) {
                        bits[token / 32] |= 1 << (token % 32);
                    }
                }
            }
            return bits;
        }
        Map<String, Boolean> known = new HashMap<>();
        for (int i = 0; i < tokens.length; i++) {
            Step step = step(pending, bytes[i]);
            if (step != null && known.computeIfAbsent(key(step), unused -> allowed(state, step, fed, scratch))) {
                bits[tokens[i] / 32] |= 1 << (tokens[i] % 32);
            }
        }
        return bits;
    }

    /**
     * Whether the grammar takes the characters {@code step} finishes (each text and its prefixes fed
     * once for all the pieces, in {@code fed}), and then some character it begins.
     */
    private static boolean allowed(GrammarState state, Step step, Map<String, GrammarState> fed,
            List<GrammarFrame> scratch) {
        GrammarState after = fed(state, step.text(), fed);
        return after != REFUSED && (step.pending().length == 0 || someCharacterBegins(after, step.pending(), scratch));
    }

    /** The state after {@code text}, each of its prefixes fed once (kept in {@code fed}); REFUSED where refused. */
    private static GrammarState fed(GrammarState state, String text, Map<String, GrammarState> fed) {
        if (text.isEmpty()) {
            return state;
        }
        GrammarState known = fed.get(text);
        if (known == null) {
            GrammarState before = fed(state, text.substring(0, text.length() - 1), fed);
            GrammarState next = before == REFUSED ? null : before.feed(text.charAt(text.length() - 1));
            known = next == null ? REFUSED : next;
            fed.put(text, known);
        }
        return known;
    }

    /** Where the grammar refuses a text (the map cannot hold null). */
    private static final GrammarState REFUSED = GrammarState.of(GrammarFrame.Done.INSTANCE);

    /**
     * The characters {@code pending} then {@code bytes} finish, and the bytes of the one they begin (empty
     * when they end on a character's end); null when they are not UTF-8 (a byte no character starts with
     * or continues with there, an overlong form, a surrogate, past U+10FFFF).
     */
    static Step step(byte[] pending, byte[] bytes) {
        byte[] all = new byte[pending.length + bytes.length];
        System.arraycopy(pending, 0, all, 0, pending.length);
        System.arraycopy(bytes, 0, all, pending.length, bytes.length);
        StringBuilder text = new StringBuilder();
        int i = 0;
        while (i < all.length) {
            int lead = all[i] & 0xff;
            int length = length(lead);
            if (length < 0) {
                return null;
            }
            int present = Math.min(length, all.length - i);
            for (int k = 1; k < present; k++) {
                int b = all[i + k] & 0xff;
                if (b < lowest(lead, k) || b > highest(lead, k)) {
                    return null;
                }
            }
            if (present < length) {
                return new Step(text.toString(), Arrays.copyOfRange(all, i, all.length));
            }
            int codePoint = length == 1 ? lead : lead & (0xff >> (length + 1));
            for (int k = 1; k < length; k++) {
                codePoint = codePoint << 6 | (all[i + k] & 0x3f);
            }
            text.appendCodePoint(codePoint);
            i += length;
        }
        return new Step(text.toString(), NONE_PENDING);
    }

    /**
     * Whether {@code state} takes some character whose UTF-8 begins with {@code begun} (one to three
     * bytes of a longer character): those characters are one range of code points, tried in order;
     * past U+FFFF, each high surrogate once, then the low ones only after a high one taken.
     */
    static boolean someCharacterBegins(GrammarState state, byte[] begun, List<GrammarFrame> scratch) {
        if (!state.mayTakeNonAscii()) {
            return false; // every character begun by pieces is from U+0080 on
        }
        if (state.takesEveryNonAscii()) {
            return true;
        }
        int lead = begun[0] & 0xff;
        int length = length(lead);
        ByteArrayOutputStream lowest = new ByteArrayOutputStream();
        ByteArrayOutputStream highest = new ByteArrayOutputStream();
        lowest.writeBytes(begun);
        highest.writeBytes(begun);
        for (int k = begun.length; k < length; k++) {
            lowest.write(lowest(lead, k));
            highest.write(highest(lead, k));
        }
        int first = step(NONE_PENDING, lowest.toByteArray()).text().codePointAt(0);
        int last = step(NONE_PENDING, highest.toByteArray()).text().codePointAt(0);
        if (last <= Character.MAX_VALUE) {
            for (int c = first; c <= last; c++) {
                if (state.takes((char) c, scratch)) {
                    return true;
                }
            }
            return false;
        }
        for (char high = Character.highSurrogate(first); high <= Character.highSurrogate(last); high++) {
            GrammarState after = state.feed(high, scratch);
            if (after == null) {
                continue;
            }
            int from = Math.max(first, Character.toCodePoint(high, Character.MIN_LOW_SURROGATE));
            int to = Math.min(last, Character.toCodePoint(high, Character.MAX_LOW_SURROGATE));
            for (int c = from; c <= to; c++) {
                if (after.takes(Character.lowSurrogate(c), scratch)) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Bytes of the character {@code lead} begins, or -1 when no character begins with it. */
    private static int length(int lead) {
        if (lead < 0x80) {
            return 1;
        }
        if (lead >= 0xC2 && lead <= 0xDF) {
            return 2;
        }
        if (lead >= 0xE0 && lead <= 0xEF) {
            return 3;
        }
        return lead >= 0xF0 && lead <= 0xF4 ? 4 : -1;
    }

    /** The least byte at position {@code k} (1 on) of a character begun by {@code lead}: no overlong forms. */
    private static int lowest(int lead, int k) {
        return k == 1 && lead == 0xE0 ? 0xA0 : k == 1 && lead == 0xF0 ? 0x90 : 0x80;
    }

    /** The greatest: no surrogates (after 0xED), nothing past U+10FFFF (after 0xF4). */
    private static int highest(int lead, int k) {
        return k == 1 && lead == 0xED ? 0x9F : k == 1 && lead == 0xF4 ? 0x8F : 0xBF;
    }
}
