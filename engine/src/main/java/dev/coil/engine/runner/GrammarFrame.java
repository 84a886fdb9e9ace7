package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.List;

/**
 * One way the output may stand within its grammar: the innermost value being spelled, and, through
 * each frame's parent, the values around it (a stack that frames share, never change). {@link #feed}
 * gives the frames one more character leads to: none when the character cannot come next, several
 * where the grammar cannot tell yet which of its alternatives the text follows. {@link GrammarState}
 * holds the set.
 *
 * <p>Text is JSON as RFC 8259 writes it (but for a {@link ValueRule.RegexRule}'s, which is any text its
 * regular expression matches), with no whitespace before the first value or after the
 * last, and between a container's tokens either nothing, one space, or a line break and up to
 * {@link #MAX_INDENT} spaces or tabs (llama.cpp's JSON grammars allow the same): a model held to the
 * grammar would otherwise fill its tokens with blank lines, which JSON allows. This takes JSON written
 * compact and indented. Characters are UTF-16 units as decoded text holds them; a string takes any
 * from U+0020 on but the quote and the backslash (U+FFFD included, which stands for a token's
 * incomplete UTF-8).
 */
sealed interface GrammarFrame {

    /** A frame of a structural tag's text ({@link StructuralRules}), made outside this file. */
    non-sealed interface TextFrame extends GrammarFrame {
    }

    /** Most spaces or tabs after a line break between tokens (indentation ten levels deep at two spaces). */
    int MAX_INDENT = 20;

    /** Adds to {@code out} the frames that {@code c} leads to from this one (none: it cannot come next). */
    void feed(char c, List<GrammarFrame> out);

    /** Whether the text may end here: the output's value is whole. */
    boolean mayEnd();

    /**
     * Whether a character from U+0080 on may come next: false only where that is certain (JSON's
     * punctuation, numbers, literals of ASCII, escapes), so that the tokens holding part of a character
     * ({@link CharacterPieces}) are refused there without trying the characters they could begin.
     */
    default boolean mayTakeNonAscii() {
        return true;
    }

    /**
     * Whether every character from U+0080 on may come next: true only where that is certain (a JSON
     * string with room for one more character, free text that searches only for ASCII), so that the
     * tokens holding part of a character are allowed there without trying one.
     */
    default boolean takesEveryNonAscii() {
        return false;
    }

    /** A container waiting on a value, once that value is whole. */
    default GrammarFrame valueDone() {
        throw new IllegalStateException(this + " waits on no value");
    }

    /**
     * {@link #valueDone} where the value is known by {@code text}, which a container of distinct items
     * compares with those before: one of a {@link ValueRule.LiteralRule}'s texts, a kept string's
     * characters ({@link #keepsStrings}, escapes undone), a number's canonical text (an integer's
     * digits, -0 written 0; another number's value without trailing zeros).
     */
    default GrammarFrame literalDone(String text) {
        return valueDone();
    }

    /** Whether a string value spelled inside this container keeps its characters for {@link #literalDone}. */
    default boolean keepsStrings() {
        return false;
    }

    /**
     * The numbers an array of distinct numbers holds so far (their canonical texts: see
     * {@link #literalDone}), which the number being spelled inside it must differ from; null for any
     * other container.
     */
    default List<String> numbersWritten() {
        return null;
    }

    /** What any JSON value may be. */
    List<ValueRule> ANY_VALUE = List.of(ValueRule.ObjectRule.ANY, ValueRule.ArrayRule.ANY, ValueRule.StringRule.ANY,
            ValueRule.NumberRule.NUMBER, ValueRule.LiteralRule.TRUE_FALSE_NULL);

    /** The frames of a value of {@code rule} whose first character is {@code c}, inside {@code parent}. */
    static void startValue(ValueRule rule, GrammarFrame parent, char c, List<GrammarFrame> out) {
        switch (rule) {
            case ValueRule.AnyValue any -> {
                for (ValueRule alternative : ANY_VALUE) {
                    startValue(alternative, parent, c, out);
                }
            }
            case ValueRule.UnionRule union -> {
                for (ValueRule alternative : union.alternatives) {
                    startValue(alternative, parent, c, out);
                }
            }
            case ValueRule.Reference reference -> startValue(reference.target, parent, c, out);
            case ValueRule.ObjectRule object -> {
                if (c == '{') {
                    out.add(new ObjectFrame(object, parent, ObjectFrame.OPEN, 0, -1, "", 0, 0, 0, null));
                }
            }
            case ValueRule.ArrayRule array -> {
                if (c == '[') {
                    out.add(new ArrayFrame(array, parent, ArrayFrame.OPEN, 0, 0,
                            array.keepsWritten() ? List.of() : null));
                }
            }
            case ValueRule.StringRule string -> {
                if (c == '"') {
                    out.add(string.pattern == null ? new StringFrame(string, parent, StringLexer.NORMAL, 0)
                            : new PatternStringFrame(string.pattern, parent, PatternStringFrame.NORMAL,
                                    string.pattern.start(), parent.keepsStrings() ? TextChain.EMPTY : null));
                }
            }
            case ValueRule.RegexRule regex ->
                    new RegexFrame(regex.automaton, regex.automaton.start(), parent).feed(c, out);
            case ValueRule.GrammarRule grammar -> ContextFreeFrame.start(grammar.grammar, parent, c, out);
            case ValueRule.NumberRule number -> NumberFrame.start(number, parent, c, out);
            case ValueRule.LiteralRule literal -> new LiteralFrame(literal.texts, 0, parent).feed(c, out);
            case ValueRule.TextRule text -> text.start(parent, c, out);
        }
    }

    /**
     * Whether the first character of a value of {@code rule} may be from U+0080 on: never for JSON's
     * values (a quote, a brace, a digit...), where its pattern, grammar or literals say for the others;
     * a text rule (a structural tag's) or references nested deeper than a few: maybe.
     */
    static boolean startMayTakeNonAscii(ValueRule rule, GrammarFrame parent, int depth) {
        return switch (rule) {
            case ValueRule.AnyValue any -> false;
            case ValueRule.UnionRule union -> union.alternatives.stream()
                    .anyMatch(alternative -> startMayTakeNonAscii(alternative, parent, depth + 1));
            case ValueRule.Reference reference -> depth > 16 || startMayTakeNonAscii(reference.target, parent, depth + 1);
            case ValueRule.ObjectRule object -> false;
            case ValueRule.ArrayRule array -> false;
            case ValueRule.StringRule string -> false;
            case ValueRule.NumberRule number -> false;
            case ValueRule.RegexRule regex -> regex.automaton.mayTakeFrom(regex.automaton.start(), '\u0080');
            case ValueRule.GrammarRule grammar -> ContextFreeFrame.startMayTakeNonAscii(grammar.grammar, parent);
            case ValueRule.LiteralRule literal -> new LiteralFrame(literal.texts, 0, parent).mayTakeNonAscii();
            case ValueRule.TextRule text -> true;
        };
    }

    static boolean isWhitespace(char c) {
        return c == ' ' || c == '\n' || c == '\t' || c == '\r';
    }

    /**
     * The whitespace between two tokens after {@code c}, or -1 when {@code c} may not come: 0 none yet,
     * 1 one space (nothing more), 2 + k a line break and k spaces or tabs.
     */
    static int whitespaceAfter(int whitespace, char c) {
        if (whitespace == 0) {
            return c == ' ' ? 1 : c == '\n' ? 2 : -1;
        }
        return whitespace >= 2 && whitespace - 2 < MAX_INDENT && (c == ' ' || c == '\t') ? whitespace + 1 : -1;
    }

    /** Before the output's first character: its value starts here, with no whitespace before it. */
    record Start(ValueRule rule) implements GrammarFrame {
        @Override
        public boolean mayTakeNonAscii() {
            return startMayTakeNonAscii(rule, Top.INSTANCE, 0);
        }

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            startValue(rule, Top.INSTANCE, c, out);
        }

        /** Only text that is not JSON (a regular expression's, a grammar's, a structural tag's) may be empty. */
        @Override
        public boolean mayEnd() {
            return ValueRule.matchesEmpty(rule);
        }
    }

    /** Most whitespace characters between a preamble's end and the value (a model writes a blank line or two). */
    int MAX_GAP = 4;

    /**
     * Free text before the output's value ({@link OutputGrammar#after}): any characters until the text
     * ends with {@code end}, of which the last {@code matched} characters seen begin {@code end}; then
     * {@link Gap}.
     */
    record Preamble(String end, int matched, ValueRule rule) implements GrammarFrame {
        @Override
        public void feed(char c, List<GrammarFrame> out) {
            int next = matchedAfter(end, matched, c);
            out.add(next == end.length() ? new Gap(rule, 0) : new Preamble(end, next, rule));
        }

        /** The output may not end before its value. */
        @Override
        public boolean mayEnd() {
            return false;
        }

        /**
         * How many characters of {@code end} the text ends with after {@code c}, when it ended with
         * {@code matched} of them: the longest prefix of {@code end} that is a suffix of those
         * characters and {@code c}.
         */
        static int matchedAfter(String end, int matched, char c) {
            if (end.charAt(matched) == c) {
                return matched + 1;
            }
            String seen = end.substring(0, matched) + c;
            for (int length = Math.min(matched, end.length() - 1); length > 0; length--) {
                if (seen.endsWith(end.substring(0, length))) {
                    return length;
                }
            }
            return 0;
        }
    }

    /** After a preamble: up to {@link #MAX_GAP} whitespace characters ({@code spaces} so far), then the value. */
    record Gap(ValueRule rule, int spaces) implements GrammarFrame {
        /** Its whitespace is ASCII; then the value's first character. */
        @Override
        public boolean mayTakeNonAscii() {
            return startMayTakeNonAscii(rule, Top.INSTANCE, 0);
        }

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            if (isWhitespace(c) && spaces < MAX_GAP) {
                out.add(new Gap(rule, spaces + 1));
            }
            startValue(rule, Top.INSTANCE, c, out);
        }

        @Override
        public boolean mayEnd() {
            return new Start(rule).mayEnd();
        }
    }

    /** The parent of the output's value: once that is whole, nothing follows. */
    record Top() implements GrammarFrame {
        @Override
        public boolean mayTakeNonAscii() {
            return false;
        }

        static final Top INSTANCE = new Top();

        @Override
        public void feed(char c, List<GrammarFrame> out) {
        }

        @Override
        public boolean mayEnd() {
            return false;
        }

        @Override
        public GrammarFrame valueDone() {
            return Done.INSTANCE;
        }
    }

    /** The output's value is whole and nothing may follow it. */
    record Done() implements GrammarFrame {
        @Override
        public boolean mayTakeNonAscii() {
            return false;
        }

        static final Done INSTANCE = new Done();

        @Override
        public void feed(char c, List<GrammarFrame> out) {
        }

        @Override
        public boolean mayEnd() {
            return true;
        }
    }

    /**
     * Inside an object. {@code next} is the first listed property still to come; {@code chosen} the one
     * whose value is being spelled (-1 an additional key's); {@code key} and {@code escape} the key typed
     * so far, in stage KEY, and {@code name} where that key stands as a JSON string of the object's
     * propertyNames ({@link ValueRule.ObjectRule#names}; null: no such rule, not in a key, or the key can no
     * longer be an additional one).
     */
    record ObjectFrame(ValueRule.ObjectRule rule, GrammarFrame parent, int stage, int next, int chosen, String key,
            int escape, int whitespace, int count, GrammarState name) implements GrammarFrame {
        /**
         * Only inside a key, outside an escape: where an additional key may go on (as its propertyNames
         * may), or a listed name still typed has a character from U+0080 on next.
         */
        @Override
        public boolean mayTakeNonAscii() {
            if (stage != KEY || escape != StringLexer.NORMAL) {
                return false;
            }
            if (mayTakeAdditionalKey() && (name == null || name.mayTakeNonAscii())) {
                return true;
            }
            for (int j = next; j <= lastCandidate(); j++) {
                String text = rule.properties.get(j).keyText();
                if (mayTakeListed(j) && text.length() > key.length() && text.startsWith(key)
                        && text.charAt(key.length()) >= '\u0080') {
                    return true;
                }
            }
            return false;
        }

        static final int OPEN = 0;        // after '{': a key or '}'
        static final int KEY = 1;         // inside a key
        static final int COLON = 2;       // after a key
        static final int VALUE = 3;       // after ':'
        static final int IN_VALUE = 4;    // the parent of the value being spelled
        static final int AFTER_VALUE = 5; // ',' or '}'
        static final int COMMA = 6;       // after ',': a key

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            if (stage == KEY) {
                feedKey(c, out);
                return;
            }
            if (stage == IN_VALUE) {
                return;
            }
            if (isWhitespace(c)) {
                int after = whitespaceAfter(whitespace, c);
                if (after >= 0) {
                    out.add(new ObjectFrame(rule, parent, stage, next, chosen, key, escape, after, count, name));
                }
                return;
            }
            switch (stage) {
                case OPEN, COMMA -> {
                    if (c == '"' && mayTakeKey()) {
                        out.add(new ObjectFrame(rule, parent, KEY, next, chosen, "", StringLexer.NORMAL, 0, count,
                                rule.names == null ? null : GrammarState.start(rule.names).feed(c)));
                    } else if (c == '}' && stage == OPEN && mayClose()) {
                        out.add(parent.valueDone());
                    }
                }
                case COLON -> {
                    if (c == ':') {
                        out.add(new ObjectFrame(rule, parent, VALUE, next, chosen, "", 0, 0, count, null));
                    }
                }
                case VALUE -> {
                    ValueRule value = chosen < 0 ? rule.additional : rule.properties.get(chosen).value();
                    startValue(value, new ObjectFrame(rule, parent, IN_VALUE, next, chosen, "", 0, 0, count, null), c,
                            out);
                }
                default -> { // AFTER_VALUE
                    if (c == ',' && mayTakeKey()) {
                        out.add(new ObjectFrame(rule, parent, COMMA, next, -1, "", 0, 0, count, null));
                    } else if (c == '}' && mayClose()) {
                        out.add(parent.valueDone());
                    }
                }
            }
        }

        /** Whether the object may close here: every required property and at least minProperties keys written. */
        private boolean mayClose() {
            return rule.mayClose(next) && count >= rule.minProperties;
        }

        /** Whether a key may come: a listed property that may come next, or an additional key. */
        private boolean mayTakeKey() {
            for (int j = next; j <= lastCandidate(); j++) {
                if (mayTakeListed(j)) {
                    return true;
                }
            }
            return mayTakeAdditionalKey();
        }

        /** Whether listed property j may be the next key (the object can still be closed after it). */
        private boolean mayTakeListed(int j) {
            return rule.keysCanFit(j + 1, count + 1);
        }

        /** Additional keys come after every required property, up to maxProperties. */
        private boolean mayTakeAdditionalKey() {
            return rule.additional != null && rule.mayClose(next) && rule.keysCanFit(rule.properties.size(), count + 1);
        }

        /** The listed properties that may come next: from {@code next} to the first required one. */
        private int lastCandidate() {
            return Math.min(rule.firstRequired(next), rule.properties.size() - 1);
        }

        private void feedKey(char c, List<GrammarFrame> out) {
            // The key as propertyNames spell it, one character on (null: refused there, or no such rule).
            GrammarState named = name == null ? null : name.feed(c);
            boolean nameGoesOn = rule.names == null || named != null;
            if (escape == StringLexer.NORMAL && c == '"') {
                for (int j = next; j <= lastCandidate(); j++) {
                    if (rule.properties.get(j).keyText().equals(key)) {
                        if (mayTakeListed(j)) {
                            out.add(new ObjectFrame(rule, parent, COLON, j + 1, j, "", 0, 0, count + 1, null));
                        }
                        return;
                    }
                }
                if (mayTakeAdditionalKey() && (rule.names == null || named != null && named.done())
                        && !isListedName(StringLexer.unescape(key))) {
                    out.add(new ObjectFrame(rule, parent, COLON, rule.properties.size(), -1, "", 0, 0, count + 1,
                            null));
                }
                return;
            }
            int after = StringLexer.step(escape, c);
            if (after < 0) {
                return;
            }
            String typed = key + c;
            boolean fits = mayTakeAdditionalKey() && nameGoesOn;
            for (int j = next; !fits && j <= lastCandidate(); j++) {
                fits = mayTakeListed(j) && rule.properties.get(j).keyText().startsWith(typed);
            }
            if (fits) {
                out.add(new ObjectFrame(rule, parent, KEY, next, chosen, typed, after, 0, count, named));
            }
        }

        private boolean isListedName(String name) {
            for (ValueRule.Property property : rule.properties) {
                if (property.name().equals(name)) {
                    return true;
                }
            }
            return false;
        }

        @Override
        public GrammarFrame valueDone() {
            return new ObjectFrame(rule, parent, AFTER_VALUE, next, -1, "", 0, 0, count, null);
        }

        @Override
        public boolean mayEnd() {
            return false;
        }
    }

    /**
     * Inside an array, {@code count} values in; {@code used}: the distinct items written (their texts,
     * or a string's characters), else null.
     */
    record ArrayFrame(ValueRule.ArrayRule rule, GrammarFrame parent, int stage, int count, int whitespace,
            List<String> used) implements GrammarFrame {
        /** Only its punctuation and whitespace: a value in it stands in frames of its own. */
        @Override
        public boolean mayTakeNonAscii() {
            return false;
        }

        static final int OPEN = 0;        // after '[': a value or ']'
        static final int IN_VALUE = 1;    // the parent of the value being spelled
        static final int AFTER_VALUE = 2; // ',' or ']'
        static final int COMMA = 3;       // after ',': a value

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            if (stage == IN_VALUE) {
                return;
            }
            if (isWhitespace(c)) {
                int after = whitespaceAfter(whitespace, c);
                if (after >= 0) {
                    out.add(new ArrayFrame(rule, parent, stage, count, after, used));
                }
                return;
            }
            switch (stage) {
                case OPEN -> {
                    if (c == ']' && rule.minItems == 0) {
                        out.add(parent.valueDone());
                    } else if (rule.maxItems > 0) {
                        startItem(c, out);
                    }
                }
                case COMMA -> startItem(c, out);
                default -> { // AFTER_VALUE
                    if (c == ',' && count < rule.maxItems) {
                        out.add(new ArrayFrame(rule, parent, COMMA, count, 0, used));
                    } else if (c == ']' && count >= rule.minItems) {
                        out.add(parent.valueDone());
                    }
                }
            }
        }

        private void startItem(char c, List<GrammarFrame> out) {
            startValue(rule.nextItem(count, used), new ArrayFrame(rule, parent, IN_VALUE, count, 0, used), c, out);
        }

        @Override
        public GrammarFrame valueDone() {
            return new ArrayFrame(rule, parent, AFTER_VALUE, count + 1, 0, used);
        }

        /** A distinct item's text (a literal's, a string's characters, a number's) joins those written. */
        @Override
        public GrammarFrame literalDone(String text) {
            if (used == null) {
                return valueDone();
            }
            List<String> more = new ArrayList<>(used);
            more.add(text);
            return new ArrayFrame(rule, parent, AFTER_VALUE, count + 1, 0, List.copyOf(more));
        }

        @Override
        public boolean keepsStrings() {
            return rule.distinctStrings != null;
        }

        @Override
        public List<String> numbersWritten() {
            return rule.distinctNumbers ? used : null;
        }


        @Override
        public boolean mayEnd() {
            return false;
        }
    }

    /** Inside a string, {@code length} characters in. */
    record StringFrame(ValueRule.StringRule rule, GrammarFrame parent, int escape, int length) implements GrammarFrame {
        /** Outside an escape, any character but the quote, the backslash and controls. */
        @Override
        public boolean mayTakeNonAscii() {
            return escape == StringLexer.NORMAL;
        }

        /** Outside an escape, with room for one more character: every one from U+0080 on is plain. */
        @Override
        public boolean takesEveryNonAscii() {
            return escape == StringLexer.NORMAL && length < rule.maxLength;
        }

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            if (escape == StringLexer.NORMAL && c == '"') {
                if (length >= rule.minLength) {
                    out.add(parent.valueDone());
                }
                return;
            }
            int after = StringLexer.step(escape, c);
            if (after < 0) {
                return;
            }
            // An escape's characters count once it ends; none may start where the string is full.
            int counted = length + (StringLexer.endsCharacter(escape, after, c) || after != StringLexer.NORMAL ? 1 : 0);
            if (counted <= rule.maxLength) {
                int kept = after == StringLexer.NORMAL ? counted : length;
                // Without a most, the count matters only up to the least: states inside a long string repeat.
                out.add(new StringFrame(rule, parent, after,
                        rule.maxLength == Integer.MAX_VALUE ? Math.min(kept, rule.minLength) : kept));
            }
        }

        @Override
        public boolean mayEnd() {
            return false;
        }
    }

    /**
     * Inside a string held to a pattern, which the string's characters (its escapes read) must match
     * whole. Each character has one spelling, Jackson's: the quote, the backslash and the control
     * characters escaped (a short escape where there is one, else backslash-u00XX), every other
     * character as it is. So no escape is begun that the pattern cannot take. {@code text}: the
     * string's characters so far, kept for a parent that {@link #keepsStrings} (else null).
     */
    record PatternStringFrame(RegexAutomaton pattern, GrammarFrame parent, int stage, RegexAutomaton.Position position,
            TextChain text) implements GrammarFrame {
        /** Outside an escape, where the pattern reads a character from U+0080 on. */
        @Override
        public boolean mayTakeNonAscii() {
            return stage != NORMAL || pattern.mayTakeFrom(position, '\u0080');
        }

        static final int NORMAL = 0;   // outside an escape
        static final int ESCAPE = 1;   // after a backslash
        static final int U = 2;        // after backslash-u, then its first 0 (3) and second 0 (4)
        static final int HEX_LOW = 5;  // after backslash-u000 (5) or backslash-u001 (6): the last hex digit

        /** The short escapes' letters, and the characters they stand for, in the same order. */
        private static final String SHORT_ESCAPES = "\"\\bfnrt";
        private static final String SHORT_ESCAPED = "\"\\\b\f\n\r\t";

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            switch (stage) {
                case NORMAL -> {
                    if (c == '"') {
                        if (pattern.accepts(position)) {
                            out.add(text == null ? parent.valueDone() : parent.literalDone(text.toString()));
                        }
                    } else if (c == '\\') {
                        if (takesEscaped()) {
                            out.add(new PatternStringFrame(pattern, parent, ESCAPE, position, text));
                        }
                    } else if (c >= 0x20) {
                        read(c, out);
                    }
                }
                case ESCAPE -> {
                    int escape = SHORT_ESCAPES.indexOf(c);
                    if (escape >= 0) {
                        read(SHORT_ESCAPED.charAt(escape), out);
                    } else if (c == 'u' && takesLongEscaped(0, 0x1F)) {
                        out.add(new PatternStringFrame(pattern, parent, U, position, text));
                    }
                }
                case U, U + 1 -> {
                    if (c == '0') {
                        out.add(new PatternStringFrame(pattern, parent, stage + 1, position, text));
                    }
                }
                case U + 2 -> {
                    int high = c - '0';
                    if ((high == 0 || high == 1) && takesLongEscaped(high * 16, high * 16 + 15)) {
                        out.add(new PatternStringFrame(pattern, parent, HEX_LOW + high, position, text));
                    }
                }
                default -> { // HEX_LOW, HEX_LOW + 1
                    int digit = Character.digit(c, 16);
                    char escaped = (char) ((stage - HEX_LOW) * 16 + digit);
                    if (digit >= 0 && needsLongEscape(escaped)) {
                        read(escaped, out);
                    }
                }
            }
        }

        /** Adds the frame after the string's character {@code c}, if the pattern takes it here. */
        private void read(char c, List<GrammarFrame> out) {
            RegexAutomaton.Position after = pattern.feed(position, c);
            if (after != null) {
                out.add(new PatternStringFrame(pattern, parent, NORMAL, after, text == null ? null : text.append(c)));
            }
        }

        /** Whether the pattern takes a character that is written escaped here. */
        private boolean takesEscaped() {
            for (int i = 0; i < SHORT_ESCAPED.length(); i++) {
                if (pattern.feed(position, SHORT_ESCAPED.charAt(i)) != null) {
                    return true;
                }
            }
            return takesLongEscaped(0, 0x1F);
        }

        /** Whether the pattern takes a character from {@code low} to {@code high} that backslash-u spells. */
        private boolean takesLongEscaped(int low, int high) {
            for (int c = low; c <= high; c++) {
                if (needsLongEscape((char) c) && pattern.feed(position, (char) c) != null) {
                    return true;
                }
            }
            return false;
        }

        private static boolean needsLongEscape(char c) {
            return c < 0x20 && SHORT_ESCAPED.indexOf(c) < 0;
        }

        @Override
        public boolean mayEnd() {
            return false;
        }
    }

    /** Inside text held to a regular expression ({@link ValueRule.RegexRule}), written as it is. */
    record RegexFrame(RegexAutomaton automaton, RegexAutomaton.Position position, GrammarFrame parent)
            implements GrammarFrame {
        @Override
        public boolean mayTakeNonAscii() {
            return automaton.mayTakeFrom(position, '\u0080');
        }

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            RegexAutomaton.Position after = automaton.feed(position, c);
            if (after != null) {
                out.add(automaton.accepts(after) && !automaton.mayContinue(after) ? parent.valueDone()
                        : new RegexFrame(automaton, after, parent));
            }
            if (automaton.accepts(position)) {
                parent.valueDone().feed(c, out);
            }
        }

        @Override
        public boolean mayEnd() {
            return automaton.accepts(position) && parent.valueDone().mayEnd();
        }
    }

    /**
     * Inside text held to a context-free grammar ({@link ValueRule.GrammarRule}), at a terminal: element
     * {@code position} of alternative {@code alternative}, which takes one UTF-16 unit. {@code
     * continuation} is where the text goes once the alternative is whole: the frame of the rule that
     * called it (positioned after the call), or {@code outer}, the grammar's own parent, once the whole
     * text is. A state holds these frames only at terminals, and {@code outer.valueDone()} beside them
     * where the text may end, so that it is whole by itself once no terminal is left. A call at the end
     * of an alternative passes its continuation on rather than stacking a frame that has nothing left
     * (so {@code R ::= x R} repeats without growing the stack).
     */
    final class ContextFreeFrame implements GrammarFrame {
        private final ContextFreeGrammar grammar;
        private final int alternative;
        private final int position;
        private final GrammarFrame continuation;
        private final GrammarFrame outer;
        /** Computed once: states hash and compare their frames often, and a frame's callers with it. */
        private final int hash;

        ContextFreeFrame(ContextFreeGrammar grammar, int alternative, int position, GrammarFrame continuation,
                GrammarFrame outer) {
            this.grammar = grammar;
            this.alternative = alternative;
            this.position = position;
            this.continuation = continuation;
            this.outer = outer;
            this.hash = (31 * (31 * System.identityHashCode(grammar) + alternative) + position) * 31
                    + continuation.hashCode();
        }

        @Override
        public boolean equals(Object other) {
            if (this == other) {
                return true;
            }
            return other instanceof ContextFreeFrame frame && frame.hash == hash && frame.grammar == grammar
                    && frame.alternative == alternative && frame.position == position
                    && frame.continuation.equals(continuation) && frame.outer.equals(outer);
        }

        @Override
        public int hashCode() {
            return hash;
        }

        @Override
        public String toString() {
            return "ContextFreeFrame[alternative " + alternative + ", position " + position + "]";
        }

        /** Most frames one expansion may visit: a grammar ambiguous enough to pass it takes nothing there. */
        static final int MAX_EXPANSION = 4096;

        /** Whether the grammar's text may begin with a character from U+0080 on. */
        static boolean startMayTakeNonAscii(ContextFreeGrammar grammar, GrammarFrame parent) {
            List<GrammarFrame> first = new ArrayList<>();
            new ContextFreeFrame(grammar, grammar.start, 0, parent, parent).reach(first, false);
            return first.stream().anyMatch(GrammarFrame::mayTakeNonAscii);
        }

        /** The frames of the grammar's text whose first character is {@code c}, inside {@code parent}. */
        static void start(ContextFreeGrammar grammar, GrammarFrame parent, char c, List<GrammarFrame> out) {
            List<GrammarFrame> first = new ArrayList<>();
            new ContextFreeFrame(grammar, grammar.start, 0, parent, parent).reach(first, false);
            for (GrammarFrame terminal : first) {
                terminal.feed(c, out);
            }
        }

        /** Where this terminal's characters reach U+0080. */
        @Override
        public boolean mayTakeNonAscii() {
            return grammar.takesFrom(grammar.alternatives[alternative][position], '\u0080');
        }

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            if (grammar.takes(grammar.alternatives[alternative][position], c)) {
                new ContextFreeFrame(grammar, alternative, position + 1, continuation, outer).reach(out, true);
            }
        }

        /**
         * Adds to {@code out} the frames at a terminal this position reaches without reading, and with
         * {@code withEnd} the grammar's end where it reaches that; nothing when that takes more than
         * {@link #MAX_EXPANSION} frames.
         */
        private void reach(List<GrammarFrame> out, boolean withEnd) {
            List<ContextFreeFrame> terminals = new ArrayList<>();
            int[] visited = new int[1];
            boolean ends = expand(terminals, visited);
            if (visited[0] > MAX_EXPANSION) {
                return;
            }
            out.addAll(terminals);
            if (ends && withEnd) {
                out.add(outer.valueDone());
            }
        }

        /** The text may end only where the grammar's parent may: that frame stands beside these in the state. */
        @Override
        public boolean mayEnd() {
            return false;
        }

        /**
         * Adds to {@code terminals} the frames at a terminal that this position reaches without reading a
         * character; returns whether it reaches the end of the grammar's text. {@code visited[0]} counts
         * the frames visited.
         */
        private boolean expand(List<ContextFreeFrame> terminals, int[] visited) {
            if (++visited[0] > MAX_EXPANSION) {
                return false;
            }
            int[] elements = grammar.alternatives[alternative];
            if (position == elements.length) {
                return continuation instanceof ContextFreeFrame caller ? caller.expand(terminals, visited) : true;
            }
            int element = elements[position];
            if (element < 0) {
                terminals.add(this);
                return false;
            }
            GrammarFrame next = position + 1 == elements.length ? continuation
                    : new ContextFreeFrame(grammar, alternative, position + 1, continuation, outer);
            boolean ends = false;
            for (int called : grammar.ruleAlternatives[element]) {
                ends |= new ContextFreeFrame(grammar, called, 0, next, outer).expand(terminals, visited);
            }
            return ends;
        }
    }

    /**
     * Inside a number, {@code digits} digits into its current part; a character that cannot continue
     * it ends it, and counts as after the value. Parts are bounded, as llama.cpp's JSON grammars bound
     * them, so that a model cannot spin a number out forever: at most {@link #MAX_DIGITS} digits
     * before and after the point (a long's 19 and a double's 17 fit), and {@link #MAX_EXPONENT_DIGITS}
     * in the exponent. A number with bounds keeps its text ({@code typed}; null without bounds), so that
     * no character is taken after which it could not end within them.
     */
    record NumberFrame(ValueRule.NumberRule rule, GrammarFrame parent, int stage, int digits, String typed,
            List<String> written) implements GrammarFrame {
        @Override
        public boolean mayTakeNonAscii() {
            return false;
        }

        static final int MAX_DIGITS = 20;
        static final int MAX_EXPONENT_DIGITS = 3;

        static final int MINUS = 0;           // after '-'
        static final int ZERO = 1;            // after a leading 0
        static final int DIGITS = 2;          // in the integer digits (not a leading 0)
        static final int POINT = 3;           // after '.'
        static final int FRACTION = 4;        // in the fraction's digits
        static final int EXPONENT = 5;        // after 'e' or 'E'
        static final int EXPONENT_SIGN = 6;   // after the exponent's sign
        static final int EXPONENT_DIGITS = 7; // in the exponent's digits

        static void start(ValueRule.NumberRule rule, GrammarFrame parent, char c, List<GrammarFrame> out) {
            int stage = c == '-' ? MINUS : c == '0' ? ZERO : c >= '1' && c <= '9' ? DIGITS : -1;
            if (stage < 0) {
                return;
            }
            // A bounded number keeps its text, so that a digit that can no longer end within the bounds is
            // refused; so does a number that must differ from those its array holds (written).
            List<String> written = parent.numbersWritten();
            String typed = rule.bounded() || written != null ? String.valueOf(c) : null;
            int digits = stage == MINUS ? 0 : 1;
            if (mayStillEnd(rule, typed, written)) {
                out.add(new NumberFrame(rule, parent, stage, digits, typed, written));
            }
        }

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            int after = next(c);
            if (after >= 0) {
                boolean samePart = after == stage || (stage == POINT && after == FRACTION)
                        || (stage == EXPONENT_SIGN || stage == EXPONENT) && after == EXPONENT_DIGITS;
                int count = c >= '0' && c <= '9' ? (samePart ? digits + 1 : 1) : 0;
                String longer = typed == null ? null : typed + c;
                if (count <= (after == EXPONENT_DIGITS ? MAX_EXPONENT_DIGITS : MAX_DIGITS)
                        && mayStillEnd(rule, longer, written)) {
                    out.add(new NumberFrame(rule, parent, after, count, longer, written));
                }
            } else if (whole()) {
                (written == null ? parent.valueDone() : parent.literalDone(canonical(rule, typed))).feed(c, out);
            }
        }

        /**
         * Whether a number typed so far ({@code typed}, kept when it has bounds or {@code written}) can still
         * end within its bounds and as none of the integers {@code written}.
         */
        private static boolean mayStillEnd(ValueRule.NumberRule rule, String typed, List<String> written) {
            if (written != null && !rule.integer) {
                return rule.reachableUnwrittenNumber(typed, MAX_DIGITS, MAX_EXPONENT_DIGITS, written);
            }
            if (written != null) {
                // An integer of a distinct array: 0 (or -0) only as itself; otherwise it may grow by digits
                // up to MAX_DIGITS, into integers of which the bounds keep some and the written ones take a few.
                return rule.reachableUnwritten(typed, MAX_DIGITS, written);
            }
            return typed == null || !rule.bounded() || rule.mayReach(typed, MAX_DIGITS);
        }

        /** The number's text as its array compares it: an integer's digits (-0 is 0), another number's value. */
        private static String canonical(ValueRule.NumberRule rule, String typed) {
            return rule.integer ? (typed.equals("-0") ? "0" : typed) : ValueRule.NumberRule.canonical(typed);
        }

        /** The stage {@code c} continues the number into, or -1. */
        private int next(char c) {
            boolean digit = c >= '0' && c <= '9';
            boolean exponent = (c == 'e' || c == 'E') && !rule.integer && rule.decimal == null;
            boolean point = c == '.' && !rule.integer;
            return switch (stage) {
                case MINUS -> c == '0' ? ZERO : digit ? DIGITS : -1;
                case ZERO -> point ? POINT : exponent ? EXPONENT : -1;
                case DIGITS -> digit ? DIGITS : point ? POINT : exponent ? EXPONENT : -1;
                case POINT, FRACTION -> digit ? FRACTION : exponent && stage == FRACTION ? EXPONENT : -1;
                case EXPONENT -> c == '+' || c == '-' ? EXPONENT_SIGN : digit ? EXPONENT_DIGITS : -1;
                default -> digit ? EXPONENT_DIGITS : -1; // EXPONENT_SIGN, EXPONENT_DIGITS
            };
        }

        /** Whether the number may end here: a whole number, within the bounds, and not one its array holds. */
        private boolean whole() {
            boolean complete = stage == ZERO || stage == DIGITS || stage == FRACTION || stage == EXPONENT_DIGITS;
            return complete && (typed == null || !rule.bounded() || rule.holds(typed))
                    && (written == null || !written.contains(canonical(rule, typed)));
        }

        @Override
        public boolean mayEnd() {
            return whole() && parent.valueDone().mayEnd();
        }
    }

    /** Inside one of {@code candidates}, {@code position} characters in (each candidate agrees with them). */
    record LiteralFrame(List<String> candidates, int position, GrammarFrame parent) implements GrammarFrame {
        /** Where some candidate's next character is from U+0080 on. */
        @Override
        public boolean mayTakeNonAscii() {
            for (String candidate : candidates) {
                if (position < candidate.length() && candidate.charAt(position) >= '\u0080') {
                    return true;
                }
            }
            return false;
        }

        @Override
        public void feed(char c, List<GrammarFrame> out) {
            List<String> continuing = new ArrayList<>(candidates.size());
            boolean allEnd = true;
            for (String candidate : candidates) {
                if (candidate.length() > position && candidate.charAt(position) == c) {
                    continuing.add(candidate);
                    allEnd &= candidate.length() == position + 1;
                }
            }
            if (!continuing.isEmpty()) {
                // All ending here, the candidates left agree on every character: they are one text.
                out.add(allEnd ? parent.literalDone(continuing.getFirst())
                        : new LiteralFrame(List.copyOf(continuing), position + 1, parent));
            }
            String whole = whole();
            if (whole != null) {
                parent.literalDone(whole).feed(c, out);
            }
        }

        /** The candidate that ends here (a number such as 1 beside 12 may end or go on), or null. */
        private String whole() {
            for (String candidate : candidates) {
                if (candidate.length() == position) {
                    return candidate;
                }
            }
            return null;
        }

        @Override
        public boolean mayEnd() {
            String whole = whole();
            return whole != null && parent.literalDone(whole).mayEnd();
        }
    }
}
