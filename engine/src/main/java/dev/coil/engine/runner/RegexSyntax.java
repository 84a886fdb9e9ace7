package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.List;

/**
 * Reads a regular expression in the syntax JSON Schema's {@code pattern} uses (ECMA-262) into a tree of
 * {@link Node}s, matched over code points as Java's and ECMA's {@code u} mode match. The whole text must
 * match: a {@code ^} at the start and a {@code $} at the end say so again and are read past, as
 * structured outputs read patterns (a text that matches whole also matches where the pattern is searched
 * for, so an output held to it is valid either way).
 *
 * <p>Taken: literals, {@code .}, classes ({@code [a-z_]}, {@code [^"]}), the escapes {@code \d \D \w \W
 * \s \S \t \n \r \f \v \0 \xHH \\uHHHH \cX} and escaped punctuation, groups ({@code (...)}, {@code (?:...)},
 * {@code (?<name>...)}), alternation, and the quantifiers {@code * + ? {n} {n,} {n,m}} (lazy or not: the
 * same texts match). Refused by name, since no automaton of characters can hold to them: lookaround,
 * back references, word boundaries, anchors inside the pattern, Unicode property classes, flags.
 */
final class RegexSyntax {

    /** A part of the expression. */
    sealed interface Node {
    }

    /** One code point of {@code set}. */
    record Chars(CodePointSet set) implements Node {
    }

    /** The parts one after another (none: the empty text). */
    record Sequence(List<Node> parts) implements Node {
    }

    /** Any one of the alternatives. */
    record Choice(List<Node> alternatives) implements Node {
    }

    /** {@code node} {@code min} to {@code max} times ({@code max} -1: no most). */
    record Repeat(Node node, int min, int max) implements Node {
    }

    /** Most times a bounded quantifier may name: each time copies its part into the automaton. */
    static final int MAX_COUNT = 1000;

    private final String pattern;
    private int at;

    private RegexSyntax(String pattern) {
        this.pattern = pattern;
    }

    /** The tree of {@code pattern}; IllegalArgumentException says what is refused and where. */
    static Node parse(String pattern) {
        RegexSyntax syntax = new RegexSyntax(pattern);
        if (pattern.startsWith("^")) {
            syntax.at = 1;
        }
        Node node = syntax.choice();
        if (syntax.at < pattern.length()) {
            char c = pattern.charAt(syntax.at);
            throw syntax.refuse(c == ')' ? "a ) that closes no group" : "unexpected " + quoted(c));
        }
        return node;
    }

    private Node choice() {
        List<Node> alternatives = new ArrayList<>();
        alternatives.add(sequence());
        while (peek() == '|') {
            at++;
            alternatives.add(sequence());
        }
        return alternatives.size() == 1 ? alternatives.getFirst() : new Choice(alternatives);
    }

    private Node sequence() {
        List<Node> parts = new ArrayList<>();
        while (at < pattern.length() && peek() != '|' && peek() != ')') {
            if (peek() == '$') {
                if (at == pattern.length() - 1) {
                    at++;
                    break;
                }
                throw refuse("$ is taken only at the end of the pattern");
            }
            if (peek() == '^') {
                throw refuse("^ is taken only at the start of the pattern");
            }
            parts.add(quantified(atom()));
        }
        return parts.size() == 1 ? parts.getFirst() : new Sequence(parts);
    }

    private Node quantified(Node atom) {
        while (at < pattern.length()) {
            int min;
            int max;
            char c = peek();
            if (c == '*' || c == '+' || c == '?') {
                at++;
                min = c == '+' ? 1 : 0;
                max = c == '?' ? 1 : -1;
            } else if (c == '{') {
                int[] bounds = bounds();
                min = bounds[0];
                max = bounds[1];
            } else {
                return atom;
            }
            if (peek() == '?') {
                at++; // lazy: the same texts match
            }
            if (peek() == '+') {
                throw refuse("possessive quantifiers are not supported");
            }
            atom = new Repeat(atom, min, max);
        }
        return atom;
    }

    /** {n}, {n,} or {n,m} at {@code at}, as {min, max}. */
    private int[] bounds() {
        int start = at;
        int close = pattern.indexOf('}', at);
        String inside = close < 0 ? "" : pattern.substring(at + 1, close);
        if (!inside.matches("[0-9]+(,[0-9]*)?")) {
            throw refuse("a { that starts no quantifier {n}, {n,} or {n,m}; write \\{ for the character");
        }
        String[] parts = inside.split(",", -1);
        int min = count(parts[0], start);
        int max = parts.length == 1 ? min : parts[1].isEmpty() ? -1 : count(parts[1], start);
        if (max >= 0 && max < min) {
            throw refuse("the quantifier {" + inside + "} has its numbers out of order");
        }
        at = close + 1;
        return new int[] {min, max};
    }

    private int count(String digits, int start) {
        if (digits.length() > 4 || Integer.parseInt(digits) > MAX_COUNT) {
            at = start;
            throw refuse("quantifiers count up to " + MAX_COUNT);
        }
        return Integer.parseInt(digits);
    }

    private Node atom() {
        char c = peek();
        switch (c) {
            case '(' -> {
                return group();
            }
            case '[' -> {
                return new Chars(characterClass());
            }
            case '.' -> {
                at++;
                return new Chars(CodePointSet.DOT);
            }
            case '\\' -> {
                return escape();
            }
            case '*', '+', '?' -> throw refuse("nothing to repeat before " + quoted(c));
            case '{' -> throw refuse("nothing to repeat before {; write \\{ for the character");
            default -> {
                int codePoint = pattern.codePointAt(at);
                at += Character.charCount(codePoint);
                return new Chars(CodePointSet.of(codePoint));
            }
        }
    }

    private Node group() {
        int start = at;
        at++;
        if (pattern.startsWith("?:", at)) {
            at += 2;
        } else if (pattern.startsWith("?<", at) && !pattern.startsWith("?<=", at) && !pattern.startsWith("?<!", at)) {
            int close = pattern.indexOf('>', at);
            if (close < 0) {
                throw refuse("a group name without its closing >");
            }
            at = close + 1;
        } else if (peek() == '?') {
            at = start;
            throw refuse(pattern.startsWith("(?=", at) || pattern.startsWith("(?!", at) || pattern.startsWith("(?<", at)
                    ? "lookaround is not supported" : "group flags are not supported");
        }
        Node inside = choice();
        if (peek() != ')') {
            throw refuse("a group without its closing )");
        }
        at++;
        return inside;
    }

    /** An escape outside a class: a set of characters (\d), or one character. */
    private Node escape() {
        int start = at;
        at++;
        if (at >= pattern.length()) {
            throw refuse("the pattern ends in a lone backslash");
        }
        char c = pattern.charAt(at);
        if (c == 'b' || c == 'B') {
            at = start;
            throw refuse("word boundaries (\\" + c + ") are not supported");
        }
        return new Chars(escapedSet(start));
    }

    /** The characters of the escape whose letter is at {@code at} (the backslash at {@code start}), in or out of a class. */
    private CodePointSet escapedSet(int start) {
        char c = pattern.charAt(at++);
        return switch (c) {
            case 'd' -> CodePointSet.DIGIT;
            case 'D' -> CodePointSet.DIGIT.complement();
            case 'w' -> CodePointSet.WORD;
            case 'W' -> CodePointSet.WORD.complement();
            case 's' -> CodePointSet.SPACE;
            case 'S' -> CodePointSet.SPACE.complement();
            default -> CodePointSet.of(escapedCharacter(c, start));
        };
    }

    private int escapedCharacter(char c, int start) {
        switch (c) {
            case 't' -> {
                return '\t';
            }
            case 'n' -> {
                return '\n';
            }
            case 'r' -> {
                return '\r';
            }
            case 'f' -> {
                return '\f';
            }
            case 'v' -> {
                return 0x0B;
            }
            case '0' -> {
                if (at < pattern.length() && Character.isDigit(pattern.charAt(at))) {
                    at = start;
                    throw refuse("octal escapes are not supported");
                }
                return 0;
            }
            case 'x' -> {
                return hex(2, start);
            }
            case 'u' -> {
                int unit = hex(4, start);
                if (Character.isSurrogate((char) unit)) {
                    at = start;
                    throw refuse("escapes of half a surrogate pair are not supported; write the character");
                }
                return unit;
            }
            case 'c' -> {
                char letter = at < pattern.length() ? pattern.charAt(at) : 0;
                if (!(letter >= 'a' && letter <= 'z' || letter >= 'A' && letter <= 'Z')) {
                    at = start;
                    throw refuse("\\c must be followed by a letter");
                }
                at++;
                return letter % 32;
            }
            default -> {
                at = start;
                if (c >= '1' && c <= '9' || c == 'k') {
                    throw refuse("back references are not supported");
                }
                if (c == 'p' || c == 'P') {
                    throw refuse("Unicode property classes (\\" + c + ") are not supported");
                }
                if (Character.isLetterOrDigit(c)) {
                    throw refuse("unknown escape \\" + c);
                }
                at = start + 2;
                return c;
            }
        }
    }

    private int hex(int digits, int start) {
        if (at + digits > pattern.length()) {
            at = start;
            throw refuse("an escape needs " + digits + " hex digits");
        }
        String text = pattern.substring(at, at + digits);
        if (!text.matches("[0-9a-fA-F]+")) {
            at = start;
            throw refuse("an escape needs " + digits + " hex digits");
        }
        at += digits;
        return Integer.parseInt(text, 16);
    }

    /** A class: [...] or [^...]. */
    private CodePointSet characterClass() {
        int start = at;
        at++;
        boolean negated = peek() == '^';
        if (negated) {
            at++;
        }
        CodePointSet set = CodePointSet.EMPTY;
        while (at < pattern.length() && peek() != ']') {
            CodePointSet first = classAtom();
            if (peek() == '-' && at + 1 < pattern.length() && pattern.charAt(at + 1) != ']') {
                at++;
                CodePointSet last = classAtom();
                Integer low = first.single();
                Integer high = last.single();
                if (low == null || high == null) {
                    throw refuse("a range in a class must run between two characters");
                }
                if (low > high) {
                    throw refuse("the range " + new String(Character.toChars(low)) + "-"
                            + new String(Character.toChars(high)) + " runs backwards");
                }
                set = set.union(CodePointSet.range(low, high));
            } else {
                set = set.union(first);
            }
        }
        if (at >= pattern.length()) {
            at = start;
            throw refuse("a class without its closing ]");
        }
        at++;
        return negated ? set.complement() : set;
    }

    private CodePointSet classAtom() {
        if (peek() == '[') {
            throw refuse("nested classes are not supported; write \\[ for the character");
        }
        if (peek() != '\\') {
            int codePoint = pattern.codePointAt(at);
            at += Character.charCount(codePoint);
            return CodePointSet.of(codePoint);
        }
        int start = at;
        at++;
        if (at >= pattern.length()) {
            throw refuse("the pattern ends in a lone backslash");
        }
        if (pattern.charAt(at) == 'b') {
            at++;
            return CodePointSet.of('\b');
        }
        if (pattern.charAt(at) == '-') {
            at++;
            return CodePointSet.of('-');
        }
        return escapedSet(start);
    }

    private char peek() {
        return at < pattern.length() ? pattern.charAt(at) : 0;
    }

    private IllegalArgumentException refuse(String message) {
        return new IllegalArgumentException("the pattern " + quoted(pattern) + " at character " + (at + 1) + ": "
                + message);
    }

    private static String quoted(Object text) {
        return "\"" + text + "\"";
    }
}
