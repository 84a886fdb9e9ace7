package dev.coil.engine.runner;

import java.util.Arrays;

/**
 * Where a text stands in the grammar of one JSON object (RFC 8259, with an object at the top, as
 * OpenAI's {@code response_format: {"type": "json_object"}} asks): a pushdown automaton fed one
 * character at a time. {@link #accept} refuses a character that no JSON object could continue with,
 * leaving the state as it was, so that a text the automaton took whole is a prefix of some JSON
 * object, and {@link #complete} says when the object has closed.
 *
 * <p>Characters are UTF-16 units as decoded text holds them; any unit from U+0020 on other than the
 * quote and the backslash may stand in a string (U+FFFD included, which stands for a token's
 * incomplete UTF-8). The object starts the text, with no whitespace before it, and whitespace
 * between tokens is JSON's four characters, at most {@link #MAX_WHITESPACE_RUN} in a row: a model
 * held to the grammar would otherwise fill its tokens with blank lines, which JSON allows.
 */
final class JsonGrammar {

    /** Most whitespace characters in a row (a line break and indentation nine levels deep at two spaces). */
    static final int MAX_WHITESPACE_RUN = 20;

    // What comes next.
    private static final int START = 0;            // '{'
    private static final int VALUE = 1;            // a value (after ':' or ',' in an array)
    private static final int FIRST_KEY = 2;        // after '{': a key or '}'
    private static final int KEY = 3;              // after ',' in an object: a key
    private static final int COLON = 4;            // after a key
    private static final int AFTER_VALUE = 5;      // ',' or the container's closing bracket
    private static final int FIRST_ELEMENT = 6;    // after '[': a value or ']'
    private static final int STRING = 7;           // inside a string
    private static final int ESCAPE = 8;           // after a backslash in a string
    private static final int UNICODE = 9;          // inside \\uXXXX
    private static final int MINUS = 10;           // after a number's '-'
    private static final int ZERO = 11;            // after a number's leading 0
    private static final int INTEGER = 12;         // in a number's integer digits (not a leading 0)
    private static final int POINT = 13;           // after '.'
    private static final int FRACTION = 14;        // in the fraction's digits
    private static final int EXPONENT = 15;        // after 'e' or 'E'
    private static final int EXPONENT_SIGN = 16;   // after the exponent's sign
    private static final int EXPONENT_DIGITS = 17; // in the exponent's digits
    private static final int LITERAL = 18;         // inside true, false or null
    private static final int DONE = 19;            // the top-level object has closed

    private static final String[] LITERALS = {"true", "false", "null"};

    /** Open containers, outermost first: '{' or '['. */
    private char[] stack = new char[16];
    private int depth;
    private int mode = START;
    /** In STRING, ESCAPE and UNICODE: whether the string is an object's key (a colon follows it). */
    private boolean key;
    /** In UNICODE: hex digits still to come. In LITERAL: the literal's index and the characters read. */
    private int count;
    private int literal;
    private int whitespaceRun;

    JsonGrammar copy() {
        JsonGrammar copy = new JsonGrammar();
        copy.copyFrom(this);
        return copy;
    }

    /** Makes this state equal to {@code other}'s. */
    void copyFrom(JsonGrammar other) {
        if (stack.length < other.stack.length) {
            stack = new char[other.stack.length];
        }
        System.arraycopy(other.stack, 0, stack, 0, other.depth);
        depth = other.depth;
        mode = other.mode;
        key = other.key;
        count = other.count;
        literal = other.literal;
        whitespaceRun = other.whitespaceRun;
    }

    /** Whether the top-level object has closed: the text is a whole JSON object. */
    boolean complete() {
        return mode == DONE;
    }

    /** Feeds every character of {@code text}; false (and a state of no use) at the first one refused. */
    boolean acceptAll(String text) {
        for (int i = 0; i < text.length(); i++) {
            if (!accept(text.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    /** Feeds one character; false, leaving the state unchanged, when no JSON object continues with it. */
    boolean accept(char c) {
        int savedMode = mode;
        int savedDepth = depth;
        int savedCount = count;
        int savedLiteral = literal;
        int savedRun = whitespaceRun;
        boolean savedKey = key;
        // The stack needs no saving: a refused character writes no open entry (a push goes above
        // the saved depth, a close only lowers it).
        if (step(c)) {
            return true;
        }
        mode = savedMode;
        depth = savedDepth;
        count = savedCount;
        literal = savedLiteral;
        whitespaceRun = savedRun;
        key = savedKey;
        return false;
    }

    private boolean step(char c) {
        switch (mode) {
            case STRING -> {
                if (c == '"') {
                    mode = key ? COLON : AFTER_VALUE;
                    return true;
                }
                if (c == '\\') {
                    mode = ESCAPE;
                    return true;
                }
                return c >= 0x20;
            }
            case ESCAPE -> {
                if (c == 'u') {
                    mode = UNICODE;
                    count = 4;
                    return true;
                }
                if ("\"\\/bfnrt".indexOf(c) >= 0) {
                    mode = STRING;
                    return true;
                }
                return false;
            }
            case UNICODE -> {
                if (!(isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
                    return false;
                }
                if (--count == 0) {
                    mode = STRING;
                }
                return true;
            }
            case LITERAL -> {
                String word = LITERALS[literal];
                if (c != word.charAt(count)) {
                    return false;
                }
                if (++count == word.length()) {
                    mode = AFTER_VALUE;
                }
                return true;
            }
            case MINUS -> {
                return digitStartsInteger(c);
            }
            case ZERO -> {
                return afterIntegerPart(c);
            }
            case INTEGER -> {
                if (isDigit(c)) {
                    return true;
                }
                return afterIntegerPart(c);
            }
            case POINT -> {
                if (isDigit(c)) {
                    mode = FRACTION;
                    return true;
                }
                return false;
            }
            case FRACTION -> {
                if (isDigit(c)) {
                    return true;
                }
                if (c == 'e' || c == 'E') {
                    mode = EXPONENT;
                    return true;
                }
                return endNumber(c);
            }
            case EXPONENT -> {
                if (c == '+' || c == '-') {
                    mode = EXPONENT_SIGN;
                    return true;
                }
                if (isDigit(c)) {
                    mode = EXPONENT_DIGITS;
                    return true;
                }
                return false;
            }
            case EXPONENT_SIGN -> {
                if (isDigit(c)) {
                    mode = EXPONENT_DIGITS;
                    return true;
                }
                return false;
            }
            case EXPONENT_DIGITS -> {
                return isDigit(c) || endNumber(c);
            }
            case DONE -> {
                return false;
            }
            default -> {
                return structural(c);
            }
        }
    }

    /** START, VALUE, FIRST_KEY, KEY, COLON, AFTER_VALUE, FIRST_ELEMENT: between tokens of the grammar. */
    private boolean structural(char c) {
        if ((c == ' ' || c == '\t' || c == '\n' || c == '\r') && mode != START) {
            if (whitespaceRun == MAX_WHITESPACE_RUN) {
                return false;
            }
            whitespaceRun++;
            return true;
        }
        whitespaceRun = 0;
        switch (mode) {
            case START -> {
                if (c != '{') {
                    return false;
                }
                push('{');
                mode = FIRST_KEY;
                return true;
            }
            case FIRST_KEY, KEY -> {
                if (c == '"') {
                    mode = STRING;
                    key = true;
                    return true;
                }
                if (c == '}' && mode == FIRST_KEY) {
                    return close('{');
                }
                return false;
            }
            case COLON -> {
                if (c != ':') {
                    return false;
                }
                mode = VALUE;
                return true;
            }
            case AFTER_VALUE -> {
                char open = stack[depth - 1];
                if (c == ',') {
                    mode = open == '{' ? KEY : VALUE;
                    return true;
                }
                return close(c == '}' ? '{' : c == ']' ? '[' : 0);
            }
            case FIRST_ELEMENT -> {
                if (c == ']') {
                    return close('[');
                }
                return value(c);
            }
            default -> {
                return value(c);
            }
        }
    }

    /** The first character of a value. */
    private boolean value(char c) {
        switch (c) {
            case '{' -> {
                push('{');
                mode = FIRST_KEY;
            }
            case '[' -> {
                push('[');
                mode = FIRST_ELEMENT;
            }
            case '"' -> {
                mode = STRING;
                key = false;
            }
            case '-' -> mode = MINUS;
            case 't', 'f', 'n' -> {
                mode = LITERAL;
                literal = c == 't' ? 0 : c == 'f' ? 1 : 2;
                count = 1;
            }
            default -> {
                return digitStartsInteger(c);
            }
        }
        return true;
    }

    private boolean digitStartsInteger(char c) {
        if (c == '0') {
            mode = ZERO;
            return true;
        }
        if (c >= '1' && c <= '9') {
            mode = INTEGER;
            return true;
        }
        return false;
    }

    /** After a number's integer part: its fraction, its exponent, or its end. */
    private boolean afterIntegerPart(char c) {
        if (c == '.') {
            mode = POINT;
            return true;
        }
        if (c == 'e' || c == 'E') {
            mode = EXPONENT;
            return true;
        }
        return endNumber(c);
    }

    /** A number ends at a character that cannot continue it, which then counts as after the value. */
    private boolean endNumber(char c) {
        mode = AFTER_VALUE;
        return structural(c);
    }

    /** Closes the innermost container if it was opened with {@code open}. */
    private boolean close(char open) {
        if (depth == 0 || stack[depth - 1] != open) {
            return false;
        }
        depth--;
        mode = depth == 0 ? DONE : AFTER_VALUE;
        return true;
    }

    private void push(char open) {
        if (depth == stack.length) {
            stack = Arrays.copyOf(stack, 2 * depth);
        }
        stack[depth++] = open;
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }
}
