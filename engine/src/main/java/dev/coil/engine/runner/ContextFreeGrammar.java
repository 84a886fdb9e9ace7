package dev.coil.engine.runner;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiPredicate;

/**
 * A context-free grammar written in GBNF, the notation of llama.cpp's grammars that vLLM's
 * {@code structured_outputs.grammar} takes too, compiled for {@link GrammarFrame.ContextFreeFrame}:
 * <pre>
 *   root   ::= answer ("," ws answer)*      # rules; root is the text's
 *   answer ::= "yes" | "no" | [0-9]{1,3}    # literals, classes, alternatives
 *   ws     ::= [ \t\n]*
 * </pre>
 * Taken: {@code name ::= alternatives} rules (names of letters, digits, {@code -} and {@code _}; a rule
 * runs to the next {@code name ::=}), {@code |}, sequences, groups {@code (…)}, {@code "literals"},
 * classes {@code [a-z]} and {@code [^…]}, {@code .} (any character), rule names, {@code * + ?
 * {m} {m,} {m,n} {,n}} (counts up to {@link #MAX_COUNT}), {@code #} comments, and the escapes
 * {@code \n \r \t \\ \" \[ \] \- \^}, and {@code \x}, backslash-u and backslash-U before 2, 4 and 8
 * hexadecimal digits. Refused, with the reason: an undefined
 * rule, no {@code root}, a rule that can begin with itself before reading a character (left
 * recursion, which a reader that follows the text left to right cannot unfold), and a grammar that
 * matches no text. Alternatives that can never finish are dropped, so that a text the grammar
 * holds can always be completed.
 *
 * <p>Compiled, every rule is a list of alternatives, each a sequence of elements: a rule, or a
 * terminal, one UTF-16 unit out of a set of ranges (a character outside the Basic Multilingual Plane
 * is two terminals, its surrogate halves). Repetitions become rules of their own: {@code x*} is
 * {@code R ::= x R | ε}, whose recursion at its end the frames follow without growing their stack.
 */
final class ContextFreeGrammar {

    /** Most repetitions a count may ask for. */
    static final int MAX_COUNT = 1000;
    /** Most elements the compiled grammar may hold (counts copy their element). */
    static final int MAX_ELEMENTS = 200_000;

    /** The element codes of each alternative: a rule's index, or −1 − the index of a terminal. */
    final int[][] alternatives;
    /** Each rule's alternatives, by index into {@link #alternatives}. */
    final int[][] ruleAlternatives;
    /** Each terminal's UTF-16 unit ranges, flattened as {@link CodePointSet}'s. */
    final int[][] terminals;
    /** The alternative that stands for the whole text: root alone. */
    final int start;
    /** Whether the empty text is a sentence of the grammar. */
    final boolean matchesEmpty;

    private ContextFreeGrammar(int[][] alternatives, int[][] ruleAlternatives, int[][] terminals, int start,
            boolean matchesEmpty) {
        this.alternatives = alternatives;
        this.ruleAlternatives = ruleAlternatives;
        this.terminals = terminals;
        this.start = start;
        this.matchesEmpty = matchesEmpty;
    }

    /** Whether terminal {@code element} (a negative code) takes {@code unit}. */
    boolean takes(int element, char unit) {
        return CodePointSet.inRanges(terminals[-1 - element], unit);
    }

    /** Whether terminal {@code element} takes some unit from {@code least} on (a rule's element: maybe). */
    boolean takesFrom(int element, char least) {
        if (element >= 0) {
            return true;
        }
        int[] ranges = terminals[-1 - element];
        return ranges.length > 0 && ranges[ranges.length - 1] >= least;
    }

    /** Compiles GBNF text; IllegalArgumentException says what is wrong and where. */
    static ContextFreeGrammar compile(String text) {
        return new Builder(new Parser(text).parse()).build();
    }

    // ---------------------------------------------------------------------------------------------
    // Parsing: text → rules of alternatives of parsed elements.

    /** A parsed element: a terminal's code point set, a rule by name, or a group, each maybe repeated. */
    private sealed interface Parsed permits Characters, Name, Group, Repeated {
    }

    private record Characters(CodePointSet set) implements Parsed {
    }

    private record Name(String name, int at) implements Parsed {
    }

    private record Group(List<List<Parsed>> alternatives) implements Parsed {
    }

    private record Repeated(Parsed element, int min, int max) implements Parsed {
    }

    private static final class Parser {
        private final String text;
        private int at;

        Parser(String text) {
            this.text = text;
        }

        /** Rules by name, in the order written. */
        Map<String, List<List<Parsed>>> parse() {
            Map<String, List<List<Parsed>>> rules = new LinkedHashMap<>();
            skipSpace();
            while (at < text.length()) {
                int nameAt = at;
                String name = name();
                if (name.isEmpty()) {
                    throw error("a rule name");
                }
                skipSpace();
                if (!text.startsWith("::=", at)) {
                    throw error("\"::=\" after the rule name " + name);
                }
                at += 3;
                if (rules.containsKey(name)) {
                    throw new IllegalArgumentException("the rule " + name + " is defined twice (at " + nameAt + ")");
                }
                rules.put(name, alternatives(false));
                skipSpace();
            }
            if (rules.isEmpty()) {
                throw new IllegalArgumentException("the grammar has no rules");
            }
            return rules;
        }

        /** Alternatives up to the end of the rule (the next "name ::=") or, in a group, its ")". */
        private List<List<Parsed>> alternatives(boolean inGroup) {
            List<List<Parsed>> alternatives = new ArrayList<>();
            while (true) {
                alternatives.add(sequence(inGroup));
                skipSpace();
                if (at < text.length() && text.charAt(at) == '|') {
                    at++;
                    continue;
                }
                return alternatives;
            }
        }

        private List<Parsed> sequence(boolean inGroup) {
            List<Parsed> sequence = new ArrayList<>();
            while (true) {
                skipSpace();
                if (at >= text.length() || text.charAt(at) == '|' || text.charAt(at) == ')' || startsRule()) {
                    if (at < text.length() && text.charAt(at) == ')' && !inGroup) {
                        throw error("no \")\" here: no group is open");
                    }
                    return sequence;
                }
                sequence.add(repeated(element()));
            }
        }

        private Parsed element() {
            char c = text.charAt(at);
            switch (c) {
                case '"' -> {
                    at++;
                    List<Parsed> characters = new ArrayList<>();
                    while (at < text.length() && text.charAt(at) != '"') {
                        characters.add(new Characters(CodePointSet.of(character())));
                    }
                    expect('"', "the literal's closing quote");
                    return characters.size() == 1 ? characters.getFirst() : new Group(List.of(characters));
                }
                case '[' -> {
                    return new Characters(characterClass());
                }
                case '.' -> {
                    at++;
                    return new Characters(CodePointSet.EMPTY.complement());
                }
                case '(' -> {
                    at++;
                    List<List<Parsed>> group = alternatives(true);
                    expect(')', "the group's \")\"");
                    return new Group(group);
                }
                default -> {
                    int nameAt = at;
                    String name = name();
                    if (name.isEmpty()) {
                        throw error("a literal, a class, a group or a rule name");
                    }
                    return new Name(name, nameAt);
                }
            }
        }

        private Parsed repeated(Parsed element) {
            if (at >= text.length()) {
                return element;
            }
            switch (text.charAt(at)) {
                case '*' -> {
                    at++;
                    return new Repeated(element, 0, -1);
                }
                case '+' -> {
                    at++;
                    return new Repeated(element, 1, -1);
                }
                case '?' -> {
                    at++;
                    return new Repeated(element, 0, 1);
                }
                case '{' -> {
                    int countAt = at++;
                    skipBlanks();
                    int min = text.charAt(at) == ',' ? 0 : number();
                    skipBlanks();
                    int max = min;
                    if (text.charAt(at) == ',') {
                        at++;
                        skipBlanks();
                        max = text.charAt(at) == '}' ? -1 : number();
                        skipBlanks();
                    }
                    expect('}', "the count's \"}\"");
                    if (max != -1 && max < min) {
                        throw new IllegalArgumentException("the count at " + countAt + " has its maximum below its minimum");
                    }
                    if (min > MAX_COUNT || max > MAX_COUNT) {
                        throw new IllegalArgumentException("the count at " + countAt + " passes " + MAX_COUNT);
                    }
                    return new Repeated(element, min, max);
                }
                default -> {
                    return element;
                }
            }
        }

        private CodePointSet characterClass() {
            at++;  // [
            boolean negated = at < text.length() && text.charAt(at) == '^';
            if (negated) {
                at++;
            }
            CodePointSet set = CodePointSet.EMPTY;
            while (at < text.length() && text.charAt(at) != ']') {
                int low = character();
                int high = low;
                if (at + 1 < text.length() && text.charAt(at) == '-' && text.charAt(at + 1) != ']') {
                    at++;
                    high = character();
                    if (high < low) {
                        throw error("a range whose end is not below its start");
                    }
                }
                set = set.union(CodePointSet.range(low, high));
            }
            expect(']', "the class's \"]\"");
            return negated ? set.complement() : set;
        }

        /** One character of a literal or a class, an escape read. */
        private int character() {
            if (at >= text.length()) {
                throw error("a character");
            }
            int c = text.codePointAt(at);
            at += Character.charCount(c);
            if (c != '\\') {
                return c;
            }
            if (at >= text.length()) {
                throw error("an escape");
            }
            char escape = text.charAt(at++);
            return switch (escape) {
                case 'n' -> '\n';
                case 'r' -> '\r';
                case 't' -> '\t';
                case 'x' -> hex(2);
                case 'u' -> hex(4);
                case 'U' -> hex(8);
                case '\\', '"', '\'', '[', ']', '-', '^', '/', '.', '|', '(', ')', '*', '+', '?', '{', '}' -> escape;
                default -> throw new IllegalArgumentException("the escape \\" + escape + " at " + (at - 2)
                        + " is not one this grammar reader knows");
            };
        }

        private int hex(int digits) {
            if (at + digits > text.length()) {
                throw error(digits + " hexadecimal digits");
            }
            int value;
            try {
                value = Integer.parseInt(text.substring(at, at + digits), 16);
            } catch (NumberFormatException e) {
                throw error(digits + " hexadecimal digits");
            }
            if (value > CodePointSet.MAX || (value >= Character.MIN_SURROGATE && value <= Character.MAX_SURROGATE)) {
                throw error("a code point that is no surrogate, up to U+10FFFF");
            }
            at += digits;
            return value;
        }

        private int number() {
            int start = at;
            while (at < text.length() && Character.isDigit(text.charAt(at)) && at - start < 9) {
                at++;
            }
            if (start == at) {
                throw error("a number");
            }
            return Integer.parseInt(text.substring(start, at));
        }

        private String name() {
            int start = at;
            while (at < text.length() && isNameCharacter(text.charAt(at))) {
                at++;
            }
            return text.substring(start, at);
        }

        private static boolean isNameCharacter(char c) {
            return c < 128 && (Character.isLetterOrDigit(c) || c == '-' || c == '_');
        }

        /** Whether a rule's definition, "name ::=", starts here. */
        private boolean startsRule() {
            int end = at;
            while (end < text.length() && isNameCharacter(text.charAt(end))) {
                end++;
            }
            if (end == at) {
                return false;
            }
            while (end < text.length() && (text.charAt(end) == ' ' || text.charAt(end) == '\t')) {
                end++;
            }
            return text.startsWith("::=", end);
        }

        /** Whitespace, line breaks and comments. */
        private void skipSpace() {
            while (at < text.length()) {
                char c = text.charAt(at);
                if (c == '#') {
                    while (at < text.length() && text.charAt(at) != '\n') {
                        at++;
                    }
                } else if (Character.isWhitespace(c)) {
                    at++;
                } else {
                    return;
                }
            }
        }

        private void skipBlanks() {
            while (at < text.length() && text.charAt(at) == ' ') {
                at++;
            }
        }

        private void expect(char c, String what) {
            if (at >= text.length() || text.charAt(at) != c) {
                throw error(what);
            }
            at++;
        }

        private IllegalArgumentException error(String expected) {
            String found = at >= text.length() ? "the end of the grammar"
                    : "\"" + text.substring(at, Math.min(text.length(), at + 12)) + "\"";
            return new IllegalArgumentException("expected " + expected + " at " + at + ", found " + found);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Building: parsed rules → numbered rules, alternatives and terminals, checked.

    private static final class Builder {
        private final Map<String, List<List<Parsed>>> parsed;
        private final Map<String, Integer> ruleIndex = new HashMap<>();
        /** Per rule, its alternatives as element codes. */
        private final List<List<int[]>> rules = new ArrayList<>();
        private final List<int[]> terminals = new ArrayList<>();
        private final Map<String, Integer> terminalIndex = new HashMap<>();
        private long elements;

        Builder(Map<String, List<List<Parsed>>> parsed) {
            this.parsed = parsed;
        }

        ContextFreeGrammar build() {
            if (!parsed.containsKey("root")) {
                throw new IllegalArgumentException("the grammar has no rule named root");
            }
            for (String name : parsed.keySet()) {
                ruleIndex.put(name, newRule());
            }
            for (Map.Entry<String, List<List<Parsed>>> rule : parsed.entrySet()) {
                int index = ruleIndex.get(rule.getKey());
                for (List<Parsed> alternative : rule.getValue()) {
                    rules.get(index).add(sequence(alternative));
                }
            }
            int root = ruleIndex.get("root");
            BitSet productive = productive();
            if (!productive.get(root)) {
                throw new IllegalArgumentException("the grammar matches no text: root never ends");
            }
            // Drop the alternatives that can never finish, so that every text the grammar takes can be completed.
            for (List<int[]> alternatives : rules) {
                alternatives.removeIf(alternative -> !finishes(alternative, productive));
            }
            BitSet nullable = nullable();
            checkLeftRecursion(nullable);

            List<int[]> all = new ArrayList<>();
            int[][] ruleAlternatives = new int[rules.size()][];
            for (int r = 0; r < rules.size(); r++) {
                List<int[]> alternatives = rules.get(r);
                ruleAlternatives[r] = new int[alternatives.size()];
                for (int a = 0; a < alternatives.size(); a++) {
                    ruleAlternatives[r][a] = all.size();
                    all.add(alternatives.get(a));
                }
            }
            int start = all.size();
            all.add(new int[] {root});
            return new ContextFreeGrammar(all.toArray(int[][]::new), ruleAlternatives,
                    terminals.toArray(int[][]::new), start, nullable.get(root));
        }

        private int newRule() {
            rules.add(new ArrayList<>());
            return rules.size() - 1;
        }

        private int[] sequence(List<Parsed> sequence) {
            List<Integer> codes = new ArrayList<>();
            for (Parsed element : sequence) {
                append(element, codes);
            }
            count(codes.size());
            return codes.stream().mapToInt(Integer::intValue).toArray();
        }

        /** Counts elements written out, refusing a grammar whose counts would make it too large. */
        private void count(long more) {
            elements += more;
            if (elements > MAX_ELEMENTS) {
                throw new IllegalArgumentException("the grammar passes " + MAX_ELEMENTS + " elements once its counts "
                        + "are written out");
            }
        }

        /** The codes of one parsed element, appended. */
        private void append(Parsed element, List<Integer> codes) {
            switch (element) {
                case Characters characters -> characters(characters.set(), codes);
                case Name name -> {
                    Integer index = ruleIndex.get(name.name());
                    if (index == null) {
                        throw new IllegalArgumentException("the rule " + name.name() + " (at " + name.at()
                                + ") is not defined");
                    }
                    codes.add(index);
                }
                case Group group -> {
                    if (group.alternatives().size() == 1) {
                        group.alternatives().getFirst().forEach(part -> append(part, codes));
                    } else {
                        int rule = newRule();
                        for (List<Parsed> alternative : group.alternatives()) {
                            rules.get(rule).add(sequence(alternative));
                        }
                        codes.add(rule);
                    }
                }
                case Repeated repeated -> {
                    int[] one = sequence(List.of(repeated.element()));
                    count((long) one.length * Math.max(repeated.min(), repeated.max()));
                    for (int i = 0; i < repeated.min(); i++) {
                        add(one, codes);
                    }
                    if (repeated.max() == -1) {
                        // R ::= one R | ε
                        int rule = newRule();
                        int[] again = Arrays.copyOf(one, one.length + 1);
                        again[one.length] = rule;
                        rules.get(rule).add(again);
                        rules.get(rule).add(new int[0]);
                        codes.add(rule);
                    } else if (repeated.max() > repeated.min()) {
                        // O_k ::= one O_(k+1) | ε, the last O ::= one | ε
                        int next = -1;
                        for (int k = repeated.max() - repeated.min(); k > 0; k--) {
                            int rule = newRule();
                            int[] first = next == -1 ? one : Arrays.copyOf(one, one.length + 1);
                            if (next != -1) {
                                first[one.length] = next;
                            }
                            rules.get(rule).add(first);
                            rules.get(rule).add(new int[0]);
                            next = rule;
                        }
                        codes.add(next);
                    }
                }
            }
        }

        private static void add(int[] codes, List<Integer> into) {
            for (int code : codes) {
                into.add(code);
            }
        }

        /** A set of characters: one terminal of units, or a rule of one and two-unit (surrogate pair) sequences. */
        private void characters(CodePointSet set, List<Integer> codes) {
            int[] basic = set.basicRanges();
            List<int[]> pairs = set.supplementaryPairs();
            if (pairs.isEmpty()) {
                codes.add(terminal(basic));
                return;
            }
            int rule = newRule();
            if (basic.length > 0) {
                rules.get(rule).add(new int[] {terminal(basic)});
            }
            for (int[] pair : pairs) {
                rules.get(rule).add(new int[] {terminal(new int[] {pair[0], pair[1]}),
                        terminal(new int[] {pair[2], pair[3]})});
            }
            codes.add(rule);
        }

        private int terminal(int[] ranges) {
            int index = terminalIndex.computeIfAbsent(Arrays.toString(ranges), key -> {
                terminals.add(ranges);
                return terminals.size() - 1;
            });
            return -1 - index;
        }

        /** The rules that can finish: some alternative of only terminals and rules that can. */
        private BitSet productive() {
            return rulesWith((code, found) -> code < 0 || found.get(code));
        }

        private static boolean finishes(int[] alternative, BitSet productive) {
            return Arrays.stream(alternative).allMatch(code -> code < 0 || productive.get(code));
        }

        /** The rules that can match the empty text: some alternative of only rules that can. */
        private BitSet nullable() {
            return rulesWith((code, found) -> code >= 0 && found.get(code));
        }

        /**
         * The least set of rules with an alternative whose every element {@code counts}, given the
         * rules found so far: grown until it no longer changes.
         */
        private BitSet rulesWith(BiPredicate<Integer, BitSet> counts) {
            BitSet found = new BitSet();
            boolean changed = true;
            while (changed) {
                changed = false;
                for (int r = 0; r < rules.size(); r++) {
                    if (!found.get(r) && rules.get(r).stream().anyMatch(
                            alternative -> Arrays.stream(alternative).allMatch(code -> counts.test(code, found)))) {
                        found.set(r);
                        changed = true;
                    }
                }
            }
            return found;
        }

        /** Refuses a rule that can begin with itself before any character is read. */
        private void checkLeftRecursion(BitSet nullable) {
            List<List<Integer>> begins = new ArrayList<>();
            for (List<int[]> alternatives : rules) {
                List<Integer> first = new ArrayList<>();
                for (int[] alternative : alternatives) {
                    for (int code : alternative) {
                        if (code < 0) {
                            break;
                        }
                        first.add(code);
                        if (!nullable.get(code)) {
                            break;
                        }
                    }
                }
                begins.add(first);
            }
            int[] mark = new int[rules.size()];  // 0 unseen, 1 on the path, 2 done
            for (int r = 0; r < rules.size(); r++) {
                if (mark[r] != 0) {
                    continue;
                }
                Deque<int[]> stack = new ArrayDeque<>();  // {rule, next edge}
                stack.push(new int[] {r, 0});
                mark[r] = 1;
                while (!stack.isEmpty()) {
                    int[] top = stack.peek();
                    List<Integer> edges = begins.get(top[0]);
                    if (top[1] == edges.size()) {
                        mark[top[0]] = 2;
                        stack.pop();
                        continue;
                    }
                    int next = edges.get(top[1]++);
                    if (mark[next] == 1) {
                        throw new IllegalArgumentException("the rule " + name(next) + " is left-recursive (it can "
                                + "begin with itself before reading a character), which this grammar reader cannot "
                                + "follow; write the repetition with * or + instead");
                    }
                    if (mark[next] == 0) {
                        mark[next] = 1;
                        stack.push(new int[] {next, 0});
                    }
                }
            }
        }

        /** A rule's name as written, or what made it (a group or a count). */
        private String name(int rule) {
            for (Map.Entry<String, Integer> named : ruleIndex.entrySet()) {
                if (named.getValue() == rule) {
                    return named.getKey();
                }
            }
            return "(a group or a repetition)";
        }
    }
}
