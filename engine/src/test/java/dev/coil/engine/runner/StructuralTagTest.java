package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/**
 * Structural tags ({@link StructuralTag}) against {@link StructuralTagReference}, which reads the same
 * JSON plainly: texts a random walk through the grammar finishes follow the tag, and the grammar takes
 * a text, and each of its one-character changes, exactly where the reference does.
 */
class StructuralTagTest {

    /** A tool call's arguments: one string property, no other keys (the grammar's strict mode, said aloud). */
    static final String CITY = """
            {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"],
             "additionalProperties": false}""";
    /** Words rather than numbers: networknt's validator takes 1.0 as an integer, which the grammar spells 1. */
    static final String WORDS = """
            {"type": "array", "items": {"enum": ["a", "b", "ab"]}, "maxItems": 3}""";

    /** vLLM's example: free text, and a call wherever "<function=" appears. */
    static final String TRIGGERED = """
            {"type": "structural_tag", "format": {"type": "triggered_tags", "triggers": ["<function="],
             "tags": [{"begin": "<function=weather>", "content": {"type": "json_schema", "json_schema": %s},
                       "end": "</function>"},
                      {"begin": "<function=sum>", "content": {"type": "json_schema", "json_schema": %s},
                       "end": "</function>"}]}}""".formatted(CITY, WORDS);

    /** The older form of the same. */
    static final String STRUCTURES = """
            {"type": "structural_tag", "triggers": ["<f="],
             "structures": [{"begin": "<f=weather>", "schema": %s, "end": "</f>"},
                            {"begin": "<f=sum>", "schema": %s, "end": "</f>"}]}""".formatted(CITY, WORDS);

    /** A reasoning block of free text closed by its end, then exactly one call. */
    static final String THINK_THEN_CALL = """
            {"type": "structural_tag", "format": {"type": "sequence", "elements": [
              {"type": "tag", "begin": "<think>", "content": {"type": "any_text"}, "end": "</think>"},
              {"type": "triggered_tags", "triggers": ["<call>"], "at_least_one": true, "stop_after_first": true,
               "tags": [{"type": "tag", "begin": "<call>", "content": {"type": "json_schema", "json_schema": %s},
                         "end": ["</call>", "</c>"]}]}]}}""".formatted(WORDS);

    /** Calls in a list, a separator between them. */
    static final String SEPARATED = """
            {"type": "structural_tag", "format": {"type": "tags_with_separator", "separator": ",",
             "tags": [{"begin": "<a>", "content": {"type": "regex", "pattern": "[0-9]{1,3}"}, "end": "</a>"},
                      {"begin": "<b>", "content": {"type": "const_string", "value": "x"}, "end": "</b>"}]}}""";

    /** Alternatives, repetition and excluded strings. */
    static final String COMPOSED = """
            {"type": "structural_tag", "format": {"type": "sequence", "elements": [
              {"type": "or", "elements": [{"type": "const_string", "value": "A:"},
                                          {"type": "regex", "pattern": "B[0-9]?:"}]},
              {"type": "repeat", "min": 1, "max": 3, "content": {"type": "tag", "begin": "(",
               "content": {"type": "any_text", "excludes": ["x"]}, "end": ")"}},
              {"type": "optional", "content": {"type": "const_string", "value": "!"}},
              {"type": "star", "content": {"type": "regex", "pattern": "[ab]"}},
              {"type": "plus", "content": {"type": "const_string", "value": "."}}]}}""";

    /** Free text around calls, at least one, free text excluding a word, inside a tag of its own. */
    static final String NESTED = """
            {"type": "structural_tag", "format": {"type": "tag", "begin": "<answer>", "end": "</answer>",
             "content": {"type": "triggered_tags", "triggers": ["<"], "at_least_one": true, "excludes": ["bad"],
              "tags": [{"begin": "<n>", "content": {"type": "regex", "pattern": "-?[0-9]+"}, "end": "</n>"},
                       {"begin": "<s>", "content": {"type": "any_text"}, "end": "</s>"}]}}}""";

    /** xgrammar's dispatch inside a tag: free text, each pattern followed by its format, until the tag's end. */
    static final String DISPATCH = """
            {"type": "structural_tag", "format": {"type": "tag", "begin": "<r>", "end": "</r>",
             "content": {"type": "dispatch", "excludes": ["zz"],
              "rules": [["<f=a>", {"type": "json_schema", "json_schema": %s}],
                        ["x:", {"type": "sequence", "elements": [{"type": "regex", "pattern": "[0-9]+"},
                                                                {"type": "any_text"}]}]]}}}""".formatted(WORDS);

    /** A bounded thought, then an answer from a list. */
    static final String BOUNDED = """
            {"type": "structural_tag", "format": {"type": "sequence", "elements": [
              {"type": "tag", "begin": "<t>", "content": {"type": "any_text", "max_chars": 6}, "end": "</t>"},
              {"type": "or", "elements": [{"type": "const_string", "value": "yes"}, {"type": "const_string", "value": "no"}]}]}}""";

    static Stream<Arguments> tags() {
        return Stream.of(
                Arguments.of(TRIGGERED, List.of("", "Let me look. <function=weather>{\"city\":\"Oslo\"}</function> Done.",
                        "<function=sum>[\"a\",\"ab\"]</function><function=weather>{\"city\":\"\"}</function>",
                        "a < b, <function=sum>[]</function>")),
                Arguments.of(STRUCTURES, List.of("hi", "<f=sum>[\"b\"]</f> and <f=weather>{\"city\":\"Rome\"}</f>")),
                Arguments.of(THINK_THEN_CALL, List.of("<think>2 < 3, so </thi is not the end</think><call>[\"a\"]</call>",
                        "<think></think><call>[]</c>")),
                Arguments.of(SEPARATED, List.of("", "<a>12</a>", "<a>1</a>,<b>x</b>,<a>999</a>")),
                Arguments.of(COMPOSED, List.of("A:()..", "B7:(a)(b c)!ab.", "B:(()!ba...")),
                Arguments.of(DISPATCH, List.of("<r></r>", "<r>see <f=a>[\"a\"] and x:12 then</r>",
                        "<r>x:7<f=a>[]</r>")),
                Arguments.of(BOUNDED, List.of("<t></t>no", "<t>a </tb</t>yes", "<t>\ud83d\ude00 1234</t>no")),
                Arguments.of(NESTED, List.of("<answer><n>-12</n> is the <s>answer, not <n></s></answer>",
                        "<answer><s></s>ok</answer>")));
    }

    @ParameterizedTest
    @MethodSource("tags")
    void textsTheReferenceTakesTheGrammarTakes(String tag, List<String> texts) {
        OutputGrammar grammar = OutputGrammar.structuralTag(tag);
        for (String text : texts) {
            assertThat(StructuralTagReference.matches(tag, text)).as("the reference on %s", text).isTrue();
            assertThat(takes(grammar, text)).as("the grammar on %s", text).isTrue();
        }
    }

    /**
     * Every text the examples hold with one character changed, added or taken out: the grammar takes
     * it exactly where the reference does, so that both the texts the grammar refuses and those it
     * takes are checked.
     */
    @ParameterizedTest
    @MethodSource("tags")
    void oneCharacterChangedTheGrammarAgreesWithTheReference(String tag, List<String> texts) {
        OutputGrammar grammar = OutputGrammar.structuralTag(tag);
        int taken = 0;
        int refused = 0;
        for (String text : texts) {
            for (String changed : changes(text, alphabet(tag))) {
                boolean expected = StructuralTagReference.matches(tag, changed);
                assertThat(takes(grammar, changed)).as("the grammar on %s", escaped(changed)).isEqualTo(expected);
                if (expected) {
                    taken++;
                } else {
                    refused++;
                }
            }
        }
        assertThat(taken).as("changed texts taken").isPositive();
        assertThat(refused).as("changed texts refused").isPositive();
    }

    /**
     * Soundness: walks that pick each next character at random among those the grammar takes (from
     * the tag's own characters and a few letters) finish texts the reference takes, and a walk never
     * reaches a point where no character may follow and the text may not end.
     */
    @ParameterizedTest
    @MethodSource("tags")
    void everyTextARandomWalkFinishesFollowsTheTag(String tag, List<String> texts) {
        OutputGrammar grammar = OutputGrammar.structuralTag(tag);
        List<String> moves = new ArrayList<>();
        for (char c : alphabet(tag)) {
            moves.add(String.valueOf(c));
        }
        List<String> strings = tagStrings(tag);
        Random random = new Random(tag.hashCode());
        int finished = 0;
        List<String> allMoves = new ArrayList<>(moves);
        allMoves.addAll(strings);
        moves = allMoves;
        for (int walk = 0; walk < 200; walk++) {
            GrammarCursor cursor = new GrammarCursor(grammar);
            StringBuilder text = new StringBuilder();
            while (text.length() < 160 && !cursor.done() && !(cursor.mayEnd() && random.nextInt(6) == 0)) {
                List<String> taken = new ArrayList<>();
                for (String move : moves) {
                    if (cursor.copy().acceptAll(move)) {
                        taken.add(move);
                    }
                }
                assertThat(taken.isEmpty() && !cursor.mayEnd()).as("stuck after %s", text).isFalse();
                if (taken.isEmpty()) {
                    break;
                }
                // A tag's own strings (its begins, ends, triggers) are moves of their own half the time,
                // so that walks close what they open.
                List<String> whole = taken.stream().filter(strings::contains).toList();
                String move = !whole.isEmpty() && random.nextBoolean() ? whole.get(random.nextInt(whole.size()))
                        : taken.get(random.nextInt(taken.size()));
                assertThat(cursor.acceptAll(move)).isTrue();
                text.append(move);
            }
            if (cursor.mayEnd()) {
                finished++;
                assertThat(StructuralTagReference.matches(tag, text.toString())).as("the reference on %s", text)
                        .isTrue();
            }
        }
        assertThat(finished).as("walks that finished").isGreaterThan(50);
    }

    @Test
    void aTagEndsAtItsFirstEndAndATriggerMustBeginATag() {
        OutputGrammar grammar = OutputGrammar.structuralTag(THINK_THEN_CALL);
        GrammarState closed = grammar.start().feedAll("<think>a</think>");
        assertThat(closed).isNotNull();
        assertThat(closed.mayEnd()).as("the call must come").isFalse();
        assertThat(closed.feedAll("more")).as("free text after the block").isNull();
        assertThat(closed.feedAll("<call>[\"a\",\"b\"]</call>").done()).as("one call, then nothing").isTrue();

        GrammarState free = OutputGrammar.structuralTag(TRIGGERED).start().feedAll("text <function=");
        assertThat(free.mayEnd()).as("a trigger whole is a call begun").isFalse();
        assertThat(free.feedAll("wea")).isNotNull();
        assertThat(free.feedAll("other>")).as("no such tag").isNull();
        assertThat(free.feedAll("sum>[\"ab\"]</function> and on").mayEnd()).isTrue();
    }

    @Test
    void theGrammarFormatHoldsItsSentences() {
        OutputGrammar grammar = OutputGrammar.structuralTag("""
                {"type": "structural_tag", "format": {"type": "tag", "begin": "[", "end": "]",
                 "content": {"type": "grammar", "grammar": "root ::= (\\"yes\\" | \\"no\\") (\\",\\" root)?"}}}""");
        assertThat(takes(grammar, "[yes,no,no]")).isTrue();
        assertThat(takes(grammar, "[]")).isFalse();
        assertThat(takes(grammar, "[yes,]")).isFalse();
        assertThat(grammar.start().feedAll("[no]").done()).isTrue();
    }

    @Test
    void madeOnceAndEqualByText() {
        assertThat(OutputGrammar.structuralTag(TRIGGERED)).isSameAs(OutputGrammar.structuralTag(TRIGGERED))
                .isNotEqualTo(OutputGrammar.structuralTag(STRUCTURES));
    }

    static Stream<Arguments> refused() {
        return Stream.of(
                Arguments.of("{\"type\": \"structural_tag\"}", "needs \"format\""),
                Arguments.of("{\"format\": {\"type\": \"any_tokens\"}}", "the format \"any_tokens\" is not supported"),
                Arguments.of("{\"format\": {\"type\": \"dispatch\", \"rules\": [[\"\", {\"type\": \"any_text\"}]]}}",
                        "format.rules[0] must be [a non-empty pattern, a format]"),
                Arguments.of("{\"format\": {\"type\": \"nope\"}}", "format.type must be one of"),
                Arguments.of("{\"format\": {\"type\": \"const_string\", \"value\": \"a\", \"extra\": 1}}",
                        "format: the field \"extra\" is not supported here"),
                Arguments.of("{\"format\": {\"type\": \"any_text\", \"max_tokens\": 10}}",
                        "format.max_tokens is not supported"),
                Arguments.of("{\"format\": {\"type\": \"any_text\", \"max_chars\": -1}}",
                        "format.max_chars must be an integer of at least 0"),
                Arguments.of("{\"format\": {\"type\": \"json_schema\", \"json_schema\": {}, \"style\": \"qwen_xml\"}}",
                        "format.style: only \"json\""),
                Arguments.of("{\"format\": {\"type\": \"json_schema\", \"json_schema\": {\"contains\": {}}}}",
                        "format.json_schema: "),
                Arguments.of("{\"format\": {\"type\": \"star\", \"content\": {\"type\": \"any_text\"}}}",
                        "format: a repeated format must not match the empty text"),
                Arguments.of("{\"format\": {\"type\": \"repeat\", \"min\": 2, \"max\": 1, \"content\": "
                        + "{\"type\": \"const_string\", \"value\": \"a\"}}}", "format.max must be -1"),
                Arguments.of("{\"format\": {\"type\": \"sequence\", \"elements\": []}}",
                        "format.elements must be a non-empty array"),
                Arguments.of("{\"format\": {\"type\": \"regex\", \"pattern\": \"(?=a)\"}}",
                        "format.pattern: the pattern"),
                Arguments.of("{\"format\": {\"type\": \"tag\", \"begin\": {\"type\": \"token\", \"token\": \"<x>\"}, "
                        + "\"content\": {\"type\": \"any_text\"}, \"end\": \"</x>\"}}", "token begins are not supported"),
                Arguments.of("{\"format\": {\"type\": \"triggered_tags\", \"triggers\": [\"<f\"], \"tags\": [{\"begin\": "
                        + "\"<g>\", \"content\": {\"type\": \"any_text\"}, \"end\": \"</g>\"}]}}",
                        "the begin \"<g>\" starts with none of the triggers"),
                Arguments.of("{\"structures\": [], \"triggers\": [\"<\"]}", "structures must be a non-empty array"),
                Arguments.of("[1]", "must be an object"),
                Arguments.of("{\"format\"", "not JSON"));
    }

    @ParameterizedTest
    @MethodSource("refused")
    void whatIsNotTakenIsRefusedWithWhereItStands(String tag, String message) {
        assertThatThrownBy(() -> OutputGrammar.structuralTag(tag)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message);
    }

    /** {@code text} with characters outside printable ASCII written as Java escapes, for messages. */
    private static String escaped(String text) {
        StringBuilder out = new StringBuilder();
        for (char c : text.toCharArray()) {
            out.append(c >= ' ' && c < 0x7f ? String.valueOf(c) : String.format("\\u%04x", (int) c));
        }
        return out.toString();
    }

    private static boolean takes(OutputGrammar grammar, String text) {
        GrammarState state = grammar.start().feedAll(text);
        return state != null && state.mayEnd();
    }

    /** The strings a tag spells whole: its begins, ends, triggers, separators and constant strings. */
    private static List<String> tagStrings(String tag) {
        List<String> strings = new ArrayList<>();
        try {
            collectStrings(new com.fasterxml.jackson.databind.ObjectMapper().readTree(tag), strings);
        } catch (Exception e) {
            throw new IllegalArgumentException(e);
        }
        return strings;
    }

    private static void collectStrings(com.fasterxml.jackson.databind.JsonNode node, List<String> strings) {
        node.properties().forEach(field -> {
            var value = field.getValue();
            if (Set.of("begin", "end", "triggers", "separator", "value").contains(field.getKey())) {
                if (value.isTextual() && !value.textValue().isEmpty()) {
                    strings.add(value.textValue());
                }
                value.forEach(element -> strings.add(element.textValue()));
            } else if (!field.getKey().equals("json_schema") && !field.getKey().equals("schema")) {
                if (value.isObject()) {
                    collectStrings(value, strings);
                }
                value.forEach(element -> {
                    if (element.isObject()) {
                        collectStrings(element, strings);
                    }
                });
            }
        });
    }

    /** The tag's own characters (its strings, its JSON's punctuation) and a few letters and digits; no whitespace but the space. */
    private static char[] alphabet(String tag) {
        Set<Character> characters = new LinkedHashSet<>();
        for (char c : ("abxyz019-<>/{}[],:\". " + tag).toCharArray()) {
            if (c > ' ' || c == ' ') {
                characters.add(c);
            }
        }
        characters.remove('\\');
        char[] alphabet = new char[characters.size()];
        int i = 0;
        for (char c : characters) {
            alphabet[i++] = c;
        }
        return alphabet;
    }

    /** {@code text} with one character changed to, or added from, {@code alphabet}'s first 24, or taken out. */
    private static List<String> changes(String text, char[] alphabet) {
        Set<String> changed = new LinkedHashSet<>();
        int letters = Math.min(alphabet.length, 24);
        for (int i = 0; i <= text.length(); i++) {
            if (i < text.length()) {
                changed.add(text.substring(0, i) + text.substring(i + 1));
            }
            for (int k = 0; k < letters; k++) {
                changed.add(text.substring(0, i) + alphabet[k] + text.substring(i));
                if (i < text.length()) {
                    changed.add(text.substring(0, i) + alphabet[k] + text.substring(i + 1));
                }
            }
        }
        changed.remove(text);
        return List.copyOf(changed);
    }
}
