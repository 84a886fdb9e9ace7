package dev.coil.engine.runner;

/**
 * The characters between a JSON string's quotes (RFC 8259, section 7), one at a time: which may come
 * next after an escape's backslash and inside {@code \\uXXXX}, and where a character of the string ends.
 * An escape may name half of a surrogate pair (U+D800 to U+DFFF) only as a whole pair, high then low,
 * since many JSON readers refuse a half alone.
 */
final class StringLexer {

    /** Outside an escape. */
    static final int NORMAL = 0;
    /** After a backslash. */
    static final int ESCAPE = 1;
    // 2 to 5: inside a \\u escape, with 1 to 4 hex digits still to come.
    /** After {@code \\uD}: below U+D800, or the high half of a pair. */
    private static final int AFTER_D = 6;
    /** In the high half's escape, two digits to come; then one. */
    private static final int HIGH_TWO_LEFT = 7;
    private static final int HIGH_ONE_LEFT = 8;
    /** After the high half: its low half's backslash, {@code u}, {@code D}, then C to F. */
    private static final int LOW_BACKSLASH = 9;
    private static final int LOW_U = 10;
    private static final int LOW_D = 11;
    private static final int LOW_SECOND = 12;

    private StringLexer() {
    }

    /**
     * The state after {@code c} (not the closing quote, which the caller looks for in state NORMAL),
     * or -1 when {@code c} cannot come next.
     */
    static int step(int state, char c) {
        boolean hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        return switch (state) {
            case NORMAL -> c == '\\' ? ESCAPE : isPlain(c) ? NORMAL : -1;
            case ESCAPE -> c == 'u' ? 5 : "\"\\/bfnrt".indexOf(c) >= 0 ? NORMAL : -1;
            case 5 -> c == 'd' || c == 'D' ? AFTER_D : hex ? 4 : -1;
            case AFTER_D -> c >= '0' && c <= '7' ? 3 : "89abAB".indexOf(c) >= 0 ? HIGH_TWO_LEFT : -1;
            case HIGH_TWO_LEFT -> hex ? HIGH_ONE_LEFT : -1;
            case HIGH_ONE_LEFT -> hex ? LOW_BACKSLASH : -1;
            case LOW_BACKSLASH -> c == '\\' ? LOW_U : -1;
            case LOW_U -> c == 'u' ? LOW_D : -1;
            case LOW_D -> c == 'd' || c == 'D' ? LOW_SECOND : -1;
            case LOW_SECOND -> "cdefCDEF".indexOf(c) >= 0 ? 3 : -1;
            default -> !hex ? -1 : state == 2 ? NORMAL : state - 1; // 2 to 4
        };
    }

    /** Whether {@code c} stands in a JSON string as it is: no quote, no backslash, no control character. */
    static boolean isPlain(char c) {
        return c >= 0x20 && c != '"' && c != '\\';
    }

    /**
     * Whether the step from {@code before} to {@code after} on {@code c} ends a character of the
     * string: a plain one (the low half of a surrogate pair belongs to the character its high half
     * began) or a whole escape.
     */
    static boolean endsCharacter(int before, int after, char c) {
        return after == NORMAL && (before != NORMAL || !Character.isLowSurrogate(c));
    }

    /** The text a string's raw content (between its quotes, escapes as typed) stands for. */
    static String unescape(String raw) {
        if (raw.indexOf('\\') < 0) {
            return raw;
        }
        StringBuilder text = new StringBuilder(raw.length());
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c != '\\') {
                text.append(c);
                continue;
            }
            char escaped = raw.charAt(++i);
            switch (escaped) {
                case 'b' -> text.append('\b');
                case 'f' -> text.append('\f');
                case 'n' -> text.append('\n');
                case 'r' -> text.append('\r');
                case 't' -> text.append('\t');
                case 'u' -> {
                    text.append((char) Integer.parseInt(raw.substring(i + 1, i + 5), 16));
                    i += 4;
                }
                default -> text.append(escaped);
            }
        }
        return text.toString();
    }
}
