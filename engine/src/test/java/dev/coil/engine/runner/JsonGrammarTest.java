package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The JSON object grammar (response_format json_object) against Jackson: what it takes whole, what it
 * refuses, and where.
 */
class JsonGrammarTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Every prefix is taken and incomplete; the whole text completes the grammar. */
    private static void assertWholeObject(String text) throws Exception {
        assertThat(JSON.readTree(text)).as("Jackson reads %s", text).isInstanceOf(ObjectNode.class);
        GrammarCursor grammar = new GrammarCursor(OutputGrammar.jsonObject());
        for (int i = 0; i < text.length(); i++) {
            assertThat(grammar.done()).as("done before %d of %s", i, text).isFalse();
            assertThat(grammar.mayEnd()).as("may end before %d of %s", i, text).isFalse();
            assertThat(grammar.accept(text.charAt(i))).as("character %d of %s", i, text).isTrue();
        }
        assertThat(grammar.done()).as("done after %s", text).isTrue();
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "{}", "{ }", "{\"a\":1}", "{\"a\" : [1, 2.5, -0.5e-3, 1E+9, 0, -0, 10]}",
        "{\"s\":\"é \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"}",
        "{\"t\":true,\"f\":false,\"n\":null,\"o\":{\"x\":{}},\"e\":[],\"ea\":[[],[{}]]}",
        "{\n  \"pretty\": [\n    1,\n    {\"k\": \"v\"}\n  ]\n}"
    })
    void takesWholeObjects(String text) throws Exception {
        assertWholeObject(text);
    }

    /** Random objects as Jackson writes them, compact and indented. */
    @Test
    void takesRandomObjectsAsJacksonWritesThem() throws Exception {
        Random random = new Random(11);
        for (int i = 0; i < 300; i++) {
            ObjectNode object = randomObject(random, 0);
            assertWholeObject(JSON.writeValueAsString(object));
            assertWholeObject(JSON.writerWithDefaultPrettyPrinter().writeValueAsString(object));
        }
    }

    /** Where each text goes wrong: the characters before it are taken, that one is refused. */
    @ParameterizedTest
    @ValueSource(strings = {
        "|[1]", "|\"a\"", "{\"a\" |1}", "{\"a\":0|1}", "{\"a\":1,|}", "{\"a\":tru|}", "{\"a\":\"x|\n\"}",
        "{\"a\":\"\\|x\"}", "{\"a\":\"\\u12|g4\"}", "{}|}", "{}| ", "{\"a\":-|}", "{\"a\":1.|}", "{\"a\":1e|}",
        "{|'a':1}", "| {}", "{\"a\":[1|}", "{\"a\":{\"b\":1|]}", "{\"a\":\"\\u00|٣0\"}", "{|,}",
        "{\"a\":\"\\uD|C00\"}", "{\"a\":\"\\uD83D|x\"}", "{\"a\":\"\\uD83D\\uD|83D\"}", "{\"\\udB00|\":1}"
    })
    void refusesTheFirstCharacterNoObjectContinuesWith(String marked) {
        int at = marked.indexOf('|');
        String text = marked.substring(0, at) + marked.substring(at + 1);
        GrammarCursor grammar = new GrammarCursor(OutputGrammar.jsonObject());
        for (int i = 0; i < at; i++) {
            assertThat(grammar.accept(text.charAt(i))).as("character %d of %s", i, text).isTrue();
        }
        assertThat(grammar.accept(text.charAt(at))).as("character %d of %s", at, text).isFalse();
    }

    @Test
    void aRefusedCharacterLeavesTheStateAsItWas() throws Exception {
        GrammarCursor grammar = new GrammarCursor(OutputGrammar.jsonObject());
        assertThat(grammar.acceptAll("{\"a\":[12")).isTrue();
        GrammarCursor before = grammar.copy();
        for (String refused : List.of("}", "x", "-", "\"")) {
            assertThat(grammar.acceptAll(refused)).as(refused).isFalse();
        }
        assertThat(grammar.acceptAll("3]}")).isTrue();
        assertThat(grammar.done()).isTrue();
        assertThat(before.acceptAll(".5],\"b\":null}")).isTrue();
        assertThat(before.done()).isTrue();
    }

    /** Between tokens: nothing, one space, or a line break and at most {@link GrammarFrame#MAX_INDENT} blanks. */
    @Test
    void whitespaceIsASpaceOrALineBreakAndIndentation() {
        GrammarCursor grammar = new GrammarCursor(OutputGrammar.jsonObject());
        assertThat(grammar.acceptAll("{\n" + " \t".repeat(GrammarFrame.MAX_INDENT / 2))).isTrue();
        assertThat(grammar.accept(' ')).isFalse();
        assertThat(grammar.accept('\n')).isFalse();
        assertThat(grammar.acceptAll("\"k\" :")).isTrue();
        assertThat(grammar.accept('\t')).as("a tab only after a line break").isFalse();
        assertThat(grammar.accept('\r')).isFalse();
        assertThat(grammar.acceptAll(" ")).isTrue();
        assertThat(grammar.accept(' ')).as("a second space").isFalse();
        assertThat(grammar.accept('\n')).as("a line break after a space").isFalse();
        assertThat(grammar.acceptAll("1\n}")).isTrue();
        assertThat(grammar.done()).isTrue();
    }

    private static ObjectNode randomObject(Random random, int depth) {
        ObjectNode object = JsonNodeFactory.instance.objectNode();
        int fields = random.nextInt(depth == 0 ? 5 : 4);
        for (int f = 0; f < fields; f++) {
            object.set(randomString(random), randomValue(random, depth + 1));
        }
        return object;
    }

    private static JsonNode randomValue(Random random, int depth) {
        JsonNodeFactory nodes = JsonNodeFactory.instance;
        int kind = random.nextInt(depth > 3 ? 6 : 8);
        return switch (kind) {
            case 0 -> nodes.textNode(randomString(random));
            case 1 -> nodes.numberNode(random.nextInt(2001) - 1000);
            case 2 -> nodes.numberNode(random.nextGaussian() * Math.pow(10, random.nextInt(30) - 15));
            case 3 -> nodes.booleanNode(random.nextBoolean());
            case 4 -> nodes.nullNode();
            case 5 -> nodes.numberNode(random.nextLong());
            case 6 -> randomObject(random, depth);
            default -> {
                ArrayNode array = nodes.arrayNode();
                int items = random.nextInt(4);
                for (int i = 0; i < items; i++) {
                    array.add(randomValue(random, depth + 1));
                }
                yield array;
            }
        };
    }

    /** Text with quotes, backslashes, control characters (Jackson escapes them), non-ASCII and emoji. */
    private static String randomString(Random random) {
        String alphabet = "ab z\"\\/\n\t\u0001é漢\uD83D\uDE00";
        StringBuilder text = new StringBuilder();
        int length = random.nextInt(8);
        for (int i = 0; i < length; i++) {
            int at = random.nextInt(alphabet.length() - 1);
            if (Character.isHighSurrogate(alphabet.charAt(at))) {
                text.append(alphabet, at, at + 2);
            } else if (!Character.isLowSurrogate(alphabet.charAt(at))) {
                text.append(alphabet.charAt(at));
            }
        }
        return text.toString();
    }
}
