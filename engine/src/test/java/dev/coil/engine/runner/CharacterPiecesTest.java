package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Bytes of characters split over tokens: how pending bytes and a token's bytes split into characters
 * finished and one begun, checked against the JDK's UTF-8 decoder; and which grammar states some
 * character with given leading bytes continues, checked against feeding every such character.
 */
class CharacterPiecesTest {

    private static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] bytes(int... values) {
        byte[] bytes = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            bytes[i] = (byte) values[i];
        }
        return bytes;
    }

    /** Every split of texts of one to four byte characters into two parts gives the characters back. */
    @Test
    void stepsSplitBytesIntoCharactersFinishedAndOneBegun() {
        for (String text : List.of("a", "é", "日本", "😀", "a😀é日", "\uE000x\u0800\uFFFD\uD7FF", "\uDBFF\uDFFF")) {
            byte[] all = utf8(text);
            for (int cut = 0; cut <= all.length; cut++) {
                CharacterPieces.Step first = CharacterPieces.step(CharacterPieces.NONE_PENDING,
                        Arrays.copyOfRange(all, 0, cut));
                assertThat(first).as("%s cut at %d", text, cut).isNotNull();
                CharacterPieces.Step second = CharacterPieces.step(first.pending(), Arrays.copyOfRange(all, cut,
                        all.length));
                assertThat(first.text() + second.text()).as("%s cut at %d", text, cut).isEqualTo(text);
                assertThat(second.pending()).isEmpty();
                // What is begun is the start of the next character's bytes.
                byte[] rest = Arrays.copyOfRange(all, utf8(first.text()).length, all.length);
                assertThat(Arrays.copyOf(rest, first.pending().length)).isEqualTo(first.pending());
            }
        }
    }

    /** What is not UTF-8 goes nowhere: stray continuations, overlong forms, surrogates, past U+10FFFF. */
    @Test
    void bytesThatAreNoUtf8AreRefused() {
        for (byte[] wrong : List.of(bytes(0x80), bytes(0xC0, 0x80), bytes(0xC1), bytes(0xE0, 0x9F), bytes(0xED, 0xA0),
                bytes(0xF0, 0x8F), bytes(0xF4, 0x90), bytes(0xF5), bytes(0xFF), bytes(0xE6, 0x41), bytes('a', 0xBF))) {
            assertThat(CharacterPieces.step(CharacterPieces.NONE_PENDING, wrong)).as(Arrays.toString(wrong)).isNull();
        }
        assertThat(CharacterPieces.step(bytes(0xE6), bytes('a'))).isNull();
        assertThat(CharacterPieces.incomplete(bytes(0xE6, 0x97))).isTrue();
        assertThat(CharacterPieces.incomplete(bytes(0x97, 0xA5))).isTrue();
        assertThat(CharacterPieces.incomplete(utf8(" 日"))).isFalse();
    }

    /**
     * For states of a few grammars and leading bytes of one to three bytes: whether some character
     * with those bytes continues the state equals feeding each character of the whole range.
     */
    @Test
    void someCharacterBeginsAsFeedingEveryCharacterSays() {
        String keys = "{\"type\": \"object\", \"properties\": {\"名前\": {\"type\": \"string\", \"pattern\": "
                + "\"^[日本]+$\"}, \"age\": {\"type\": \"integer\"}}, \"additionalProperties\": false}";
        OutputGrammar gbnf = OutputGrammar.grammar("root ::= [日-本] \"x\" | \"a\" [é]\n");
        OutputGrammar freeText = OutputGrammar.structuralTag("""
                {"type": "structural_tag", "format": {"type": "triggered_tags", "triggers": ["<f"],
                 "tags": [{"begin": "<f>", "content": {"type": "const_string", "value": "x"}, "end": "</f>"}]}}""");
        OutputGrammar freeTextDay = OutputGrammar.structuralTag("""
                {"type": "structural_tag", "format": {"type": "triggered_tags", "triggers": ["日"],
                 "tags": [{"begin": "日>", "content": {"type": "const_string", "value": "x"}, "end": "</f>"}]}}""");
        OutputGrammar bounded = OutputGrammar.structuralTag("""
                {"type": "structural_tag", "format": {"type": "tag", "begin": "<t>", "end": "</t>",
                 "content": {"type": "any_text", "max_chars": 3}}}""");
        List<GrammarState> states = List.of(OutputGrammar.choice(List.of("日本", "😀", "é")).start(),
                OutputGrammar.regex("[\\u4e00-\\u4e0f]x|\\uFFFF").start(), OutputGrammar.regex("[a-z]+").start(),
                OutputGrammar.jsonObject().start().feedAll("{\"k\": \""), OutputGrammar.choice(List.of("\uD800")).start(),
                // A key being typed (listed names only), a pattern string, a number, a JSON start, a grammar.
                OutputGrammar.jsonSchema(keys).start().feedAll("{\""), OutputGrammar.jsonSchema(keys).start().feedAll("{\"a"),
                OutputGrammar.jsonSchema(keys).start().feedAll("{\"名前\": \""),
                OutputGrammar.jsonSchema(keys).start().feedAll("{\"age\": 1"), OutputGrammar.jsonSchema(keys).start(),
                gbnf.start(), gbnf.start().feedAll("a"), gbnf.start().feedAll("日"),
                // Free text searching for ASCII and for 日; any_text with one character left, and none.
                freeText.start().feedAll("ab"), freeTextDay.start().feedAll("ab"),
                bounded.start().feedAll("<t>ab"), bounded.start().feedAll("<t>abc"),
                // A string with one character left, and none.
                OutputGrammar.jsonSchema("{\"type\": \"string\", \"maxLength\": 3}").start().feedAll("\"ab"),
                OutputGrammar.jsonSchema("{\"type\": \"string\", \"maxLength\": 3}").start().feedAll("\"abc"));
        List<byte[]> leads = new ArrayList<>();
        for (int lead = 0xC2; lead <= 0xF4; lead++) {
            leads.add(bytes(lead));
        }
        for (String text : List.of("日", "本", "😀", "é", "\u4e0f", "\uFFFF", "\u0800")) {
            byte[] all = utf8(text);
            for (int length = 1; length < all.length; length++) {
                leads.add(Arrays.copyOf(all, length));
            }
        }
        for (GrammarState state : states) {
            // Every character the state takes, as the leading bytes it has.
            java.util.Set<String> begun = new java.util.HashSet<>();
            for (int codePoint = 0x80; codePoint <= Character.MAX_CODE_POINT; codePoint++) {
                if (codePoint >= Character.MIN_SURROGATE && codePoint <= Character.MAX_SURROGATE) {
                    continue;
                }
                String character = Character.toString(codePoint);
                if (state.feedAll(character) != null) {
                    byte[] encoded = utf8(character);
                    for (int length = 1; length < encoded.length; length++) {
                        begun.add(Arrays.toString(Arrays.copyOf(encoded, length)));
                    }
                }
            }
            for (byte[] lead : leads) {
                assertThat(CharacterPieces.someCharacterBegins(state, lead, new ArrayList<>()))
                        .as("%s after %s", Arrays.toString(lead), state).isEqualTo(begun.contains(Arrays.toString(lead)));
            }
        }
    }
}
