package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * GBNF grammars read and followed: regular grammars against java.util.regex over every text of a
 * small alphabet, a recursive one (nested parentheses, which no regex holds) against a parser written
 * here, random walks that never strand, and the refusals with their reasons.
 */
class ContextFreeGrammarTest {

    /** Whether {@code grammar} holds {@code text} whole. */
    private static boolean holds(OutputGrammar grammar, String text) {
        GrammarState state = grammar.start().feedAll(text);
        return state != null && state.mayEnd();
    }

    /** Every text over {@code alphabet} up to {@code length} characters, the empty one first. */
    private static List<String> texts(String alphabet, int length) {
        List<String> all = new ArrayList<>(List.of(""));
        List<String> last = List.of("");
        for (int n = 1; n <= length; n++) {
            List<String> next = new ArrayList<>();
            for (String text : last) {
                for (char c : alphabet.toCharArray()) {
                    next.add(text + c);
                }
            }
            all.addAll(next);
            last = next;
        }
        return all;
    }

    @Test
    void regularGrammarsHoldWhatTheirRegexMatches() {
        String[][] cases = {
            {"root ::= \"ab\" | \"dce\"", "ab|dce"},
            {"root ::= [a-c]{2,4}", "[a-c]{2,4}"},
            {"root ::= \"a\" (\"b\" | \"cd\")* \"a\"?", "a(b|cd)*a?"},
            {"root ::= x+ y\nx ::= \"ab\" | \"c\"\ny ::= [^abc]", "(ab|c)+[^abc]"},
            {"root ::= [ab]{,2} \"c\"{3} [b-d]{1,}  # comment", "[ab]{0,2}c{3}[b-d]+"},
            {"root ::= (\"a\" | ) \"b\"?", "a?b?"},
            {"root ::=\n  \"a\"\n  | \"b\" \"c\"\n\nother ::= \"d\"", "a|bc"},
            {"root ::= . . \"\\x64\"", "..d"},
        };
        for (String[] grammarAndRegex : cases) {
            OutputGrammar grammar = OutputGrammar.grammar(grammarAndRegex[0]);
            Pattern regex = Pattern.compile(grammarAndRegex[1], Pattern.DOTALL);
            int held = 0;
            for (String text : texts("abcde", 6)) {
                boolean expected = regex.matcher(text).matches();
                assertThat(holds(grammar, text)).as("%s on \"%s\"", grammarAndRegex[0], text).isEqualTo(expected);
                held += expected ? 1 : 0;
            }
            assertThat(held).as(grammarAndRegex[0]).isPositive();
        }
    }

    private static final String ARITHMETIC = ContextFreeGrammarTestGrammars.ARITHMETIC;

    @Test
    void aRecursiveGrammarHoldsNestedParentheses() {
        OutputGrammar grammar = OutputGrammar.grammar(ARITHMETIC);
        for (String text : texts("1+*( )", 7)) {
            assertThat(holds(grammar, text)).as("\"%s\"", text).isEqualTo(Arithmetic.parses(text));
        }
        assertThat(holds(grammar, "((((((1+2)))))*3)")).isTrue();
        assertThat(holds(grammar, "((((((1+2)))))*3")).isFalse();
        assertThat(holds(grammar, "((( 1 ))")).isFalse();
        assertThat(holds(grammar, "((( 1 )))")).isTrue();
        assertThat(holds(grammar, "(12 + 3)*(4-(5)) ")).isTrue();
    }

    @Test
    void randomWalksNeverStrandAndEndInSentences() {
        List<String> whole = wholeWalks(OutputGrammar.grammar(ARITHMETIC), "0123456789+-*( )x", new Random(7), 300,
                60, 6);
        for (String text : whole) {
            assertThat(Arithmetic.parses(text)).as("\"%s\"", text).isTrue();
        }
        assertThat(whole).hasSizeGreaterThan(100);
    }

    /**
     * {@code walks} random walks of up to {@code steps} characters of {@code alphabet}, each character
     * one the grammar takes, stopping where the text may end with a chance of one in {@code stopOneIn};
     * asserts that no walk strands (no character taken where the text may not end), and returns the
     * walks that ended whole.
     */
    private static List<String> wholeWalks(OutputGrammar grammar, String alphabet, Random random, int walks,
            int steps, int stopOneIn) {
        List<String> whole = new ArrayList<>();
        for (int walk = 0; walk < walks; walk++) {
            GrammarState state = grammar.start();
            StringBuilder text = new StringBuilder();
            for (int step = 0; step < steps && !state.done(); step++) {
                List<Character> allowed = new ArrayList<>();
                for (char c : alphabet.toCharArray()) {
                    if (state.feed(c) != null) {
                        allowed.add(c);
                    }
                }
                assertThat(!allowed.isEmpty() || state.mayEnd()).as("stranded after \"%s\"", text).isTrue();
                if (allowed.isEmpty() || state.mayEnd() && random.nextInt(stopOneIn) == 0) {
                    break;
                }
                char c = allowed.get(random.nextInt(allowed.size()));
                text.append(c);
                state = state.feed(c);
            }
            if (state.mayEnd()) {
                whole.add(text.toString());
            }
        }
        return whole;
    }

    /** JSON in GBNF, as users write it for llama.cpp: recursive values, escapes, an empty alternative. */
    private static final String JSON_VALUES = """
            root ::= value
            value ::= object | array | text | figure | ("true" | "false" | "null")
            object ::= "{" gap ( text ":" gap value ( "," gap text ":" gap value )* )? "}"
            array ::= "[" gap ( value ( "," gap value )* )? "]"
            text ::= "\\"" ( [^"\\\\\\x00-\\x1F] | "\\\\" ( ["\\\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\\""
            figure ::= "-"? ( "0" | [1-9] [0-9]{0,8} ) ( "." [0-9]{1,6} )? ( [eE] [-+]? [0-9]{1,3} )?
            gap ::= | " "   # nothing, or one space
            """;

    @Test
    void aJsonGrammarsWalksEndInJsonAJsonParserReads() throws Exception {
        OutputGrammar grammar = OutputGrammar.grammar(JSON_VALUES);
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        List<String> whole = wholeWalks(grammar, "{}[]\":, -+.0123456789eEabfnrtuls\\/xé", new Random(11), 400, 80, 4);
        for (String text : whole) {
            json.readTree(text);  // throws where the text is no JSON
        }
        assertThat(whole).hasSizeGreaterThan(100);
        assertThat(holds(grammar, "{\"a\": [1, -2.5e+3, \"\\u00e9\\n\", {}], \"b\": null}")).isTrue();
        assertThat(holds(grammar, "{\"a\": [1,]}")).isFalse();
        assertThat(holds(grammar, "\"tab\there\"")).as("a control character in a string").isFalse();
    }

    @Test
    void charactersBeyondTheBasicPlaneAreWholeCodePoints() {
        OutputGrammar grammar = OutputGrammar.grammar("root ::= \"é\" [\uD83D\uDE00-\uD83D\uDE02] . \"\\U0001F680\"");
        assertThat(holds(grammar, "é\uD83D\uDE01x\uD83D\uDE80")).isTrue();
        assertThat(holds(grammar, "é\uD83D\uDE01\uD83D\uDE00\uD83D\uDE80")).as("any character: a pair").isTrue();
        assertThat(holds(grammar, "é\uD83D\uDE03x\uD83D\uDE80")).isFalse();
        assertThat(grammar.start().feedAll("é\uD83D\uDE01\uD83D\uD83D")).as("a high half then another").isNull();
    }

    @Test
    void aWholeTextEndsByItselfAndRepetitionDoesNotGrowTheStack() {
        OutputGrammar pair = OutputGrammar.grammar("root ::= \"a\" (\"b\" | \"c\")");
        assertThat(pair.start().feedAll("ab").done()).isTrue();
        OutputGrammar many = OutputGrammar.grammar("root ::= (\"ab\" | \"c\")+");
        GrammarState state = many.start().feedAll("ab".repeat(20_000) + "c");
        assertThat(state.mayEnd()).isTrue();
        assertThat(state.done()).isFalse();
        assertThat(state.feed('b')).isNull();
    }

    @Test
    void alternativesThatCannotFinishAreDropped() {
        OutputGrammar grammar = OutputGrammar.grammar("root ::= \"a\" | \"b\" loop\nloop ::= \"c\" loop");
        assertThat(grammar.start().feed('b')).as("b leads only into a rule that never ends").isNull();
        assertThat(holds(grammar, "a")).isTrue();
    }

    @Test
    void whatCannotBeFollowedIsRefusedWithTheReason() {
        refused("root ::= root \"a\" | \"a\"", "the rule root is left-recursive");
        refused("root ::= x \"b\"\nx ::= \"\" | root", "left-recursive");
        refused("root ::= y", "the rule y (at 9) is not defined");
        refused("start ::= \"a\"", "no rule named root");
        refused("root ::= x\nx ::= \"a\" x", "matches no text");
        refused("root ::= \"a\\q\"", "the escape \\q");
        refused("root ::= (\"a\"", "the group's \")\"");
        refused("root ::= \"a\")", "no group is open");
        refused("root ::= [a-c]{1,1001}", "passes 1000");
        refused("root ::= [c-a]", "not below its start");
        refused("root ::= \"a\"\nroot ::= \"b\"", "defined twice");
        refused("root \"a\"", "\"::=\" after the rule name root");
        refused("root ::= (\"abcdefghijklmnopqrst\"{1000}){1000}", "passes 200000 elements");
    }

    private static void refused(String grammar, String reason) {
        assertThatThrownBy(() -> OutputGrammar.grammar(grammar)).as(grammar)
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(reason);
    }

    /** A recursive-descent reader of ARITHMETIC, written apart from the grammar's frames. */
    private static final class Arithmetic {
        private final String text;
        private int at;

        private Arithmetic(String text) {
            this.text = text;
        }

        static boolean parses(String text) {
            Arithmetic reader = new Arithmetic(text);
            return reader.expression() && reader.at == text.length();
        }

        private boolean expression() {
            if (!term()) {
                return false;
            }
            while (at < text.length() && (text.charAt(at) == '+' || text.charAt(at) == '-')) {
                at++;
                skipSpace();
                if (!term()) {
                    return false;
                }
            }
            return true;
        }

        private boolean term() {
            if (!factor()) {
                return false;
            }
            while (at < text.length() && text.charAt(at) == '*') {
                at++;
                if (!factor()) {
                    return false;
                }
            }
            return true;
        }

        private boolean factor() {
            if (at < text.length() && Character.isDigit(text.charAt(at))) {
                while (at < text.length() && Character.isDigit(text.charAt(at))) {
                    at++;
                }
                skipSpace();
                return true;
            }
            if (at < text.length() && text.charAt(at) == '(') {
                at++;
                skipSpace();
                if (!expression()) {
                    return false;
                }
                if (at < text.length() && text.charAt(at) == ')') {
                    at++;
                    skipSpace();
                    return true;
                }
            }
            return false;
        }

        private void skipSpace() {
            if (at < text.length() && text.charAt(at) == ' ') {
                at++;
            }
        }
    }
}
