package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.TestServer;
import dev.coil.server.api.ToolCallReader.Call;
import dev.coil.server.api.ToolCallReader.Piece;
import dev.coil.server.api.ToolCallReader.Reading;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Calls in Qwen3-Coder's and Nemotron 3 Nano's tags ({@code --tool-call-parser qwen3_coder}): each
 * output's calls equal those a plain reader finds with regular expressions over the whole text, their
 * values typed by the tool's schema; a stream cut anywhere reads as the whole output; a block that is
 * no function stays text.
 */
class XmlToolCallsTest {

    private static final ToolCallFormat FORMAT = ToolCallFormat.QWEN3_CODER;

    private static final Map<String, JsonNode> PROPERTIES = Map.of("get_weather", TestServer.parse("""
            {"city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
             "ratio": {"type": "number"}, "tags": {"type": "array"}, "options": {"type": "object"},
             "note": {"type": ["null", "string"]}}"""), "now", TestServer.parse("{}"));

    private static final String WEATHER = "<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
            + "<parameter=days>\n3\n</parameter>\n<parameter=metric>\nTrue\n</parameter>\n<parameter=ratio>\n0.5\n"
            + "</parameter>\n<parameter=tags>\n[\"a\", \"b\"]\n</parameter>\n<parameter=options>\n{\"x\": 1}\n"
            + "</parameter>\n</function>";

    private static final List<String> OUTPUTS = List.of(
            "Let me check.\n<tool_call>\n" + WEATHER + "\n</tool_call>",
            "<tool_call>\n" + WEATHER + "\n</tool_call>\n<tool_call>\n<function=now>\n</function>\n</tool_call>",
            "<tool_call>\n" + WEATHER + "\n<function=now>\n</function>\n</tool_call> after",
            "<tool_call>\n<function=get_weather>\n<parameter=city>\nNew\nYork\n</parameter>\n<parameter=days>\nthree\n"
                    + "</parameter>\n<parameter=ratio>\n2.0\n</parameter>\n<parameter=unknown>\n7\n</parameter>\n"
                    + "<parameter=note>\nNULL\n</parameter>\n<parameter=options>\nnot json\n</parameter>\n</function>\n"
                    + "</tool_call>",
            "<tool_call>\n<function=get_weather>\n<parameter=city>\na < b </param\n<parameter=days>\n4</function>\n"
                    + "</tool_call>",
            "<tool_call>\n<function=get_weather>\n<parameter=city>\nPar",
            "<tool_call>\n<function=get_wea",
            "<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call> is not this format's",
            "<tool_call>\n<function=now>\nstray text <b>\n</function>\n</tool_call>",
            "é 漢字 \uD83D\uDE00 <tool_call><function=get_weather><parameter=city>\uD83D\uDE00</parameter></function>"
                    + "</tool_call>",
            "ends inside a tag <tool_ca");

    @Test
    void callsAreTheOnesAPlainReaderFindsTypedByTheSchema() {
        for (String output : OUTPUTS) {
            Reading reading = ToolCallReader.read(FORMAT, PROPERTIES, output);
            assertThat(parsed(reading.calls())).as(output).isEqualTo(parsed(reference(output)));
        }
        Reading weather = ToolCallReader.read(FORMAT, PROPERTIES, OUTPUTS.getFirst());
        assertThat(weather.content()).isEqualTo("Let me check.");
        assertThat(weather.calls()).containsExactly(new Call("get_weather", "{\"city\":\"Paris\",\"days\":3,"
                + "\"metric\":true,\"ratio\":0.5,\"tags\":[\"a\",\"b\"],\"options\":{\"x\":1}}"));
        assertThat(ToolCallReader.read(FORMAT, PROPERTIES, OUTPUTS.get(3)).calls()).containsExactly(new Call(
                "get_weather", "{\"city\":\"New\\nYork\",\"days\":\"three\",\"ratio\":2,\"unknown\":\"7\",\"note\":null,"
                        + "\"options\":\"not json\"}"));
        assertThat(ToolCallReader.read(FORMAT, PROPERTIES, OUTPUTS.get(4)).calls()).as("a value ends where a tag begins")
                .containsExactly(new Call("get_weather", "{\"city\":\"a < b </param\",\"days\":4}"));
        assertThat(ToolCallReader.read(FORMAT, PROPERTIES, OUTPUTS.get(5)).calls()).as("cut short: closed as it stands")
                .containsExactly(new Call("get_weather", "{\"city\":\"Par\"}"));
        Reading cutName = ToolCallReader.read(FORMAT, PROPERTIES, OUTPUTS.get(6));
        assertThat(cutName.calls()).isEmpty();
        assertThat(cutName.content()).isEqualTo(OUTPUTS.get(6));
        Reading json = ToolCallReader.read(FORMAT, PROPERTIES, OUTPUTS.get(7));
        assertThat(json.calls()).isEmpty();
        assertThat(json.content()).isEqualTo(OUTPUTS.get(7));
        assertThat(ToolCallReader.read(FORMAT, PROPERTIES, OUTPUTS.get(1)).calls()).hasSize(2)
                .element(1).isEqualTo(new Call("now", "{}"));
    }

    @Test
    void aStreamCutAnywhereReadsAsTheWholeOutput() {
        for (String output : OUTPUTS) {
            Reading whole = ToolCallReader.read(FORMAT, PROPERTIES, output);
            for (List<String> cut : StreamCuts.of(output, 50)) {
                ToolCallReader reader = new ToolCallReader(FORMAT, PROPERTIES);
                List<Piece> pieces = new ArrayList<>();
                for (String piece : cut) {
                    pieces.addAll(reader.feed(piece));
                }
                pieces.addAll(reader.finish());
                assertThat(ToolCallReader.gather(pieces)).as("%s cut as %s", output, cut).isEqualTo(whole);
            }
        }
    }

    @Test
    void valuesAreTypedAsTheSchemaSays() {
        assertThat(XmlCallScanner.typed(" 42 ", type("integer")).asInt()).isEqualTo(42);
        assertThat(XmlCallScanner.typed("4.5", type("integer")).asText()).isEqualTo("4.5");
        assertThat(XmlCallScanner.typed("1e3", type("number")).toString()).isEqualTo("1000");
        assertThat(XmlCallScanner.typed("-0.25", type("number")).toString()).isEqualTo("-0.25");
        assertThat(XmlCallScanner.typed("FALSE", type("boolean")).asBoolean()).isFalse();
        assertThat(XmlCallScanner.typed("yes", type("boolean")).isBoolean()).isTrue();
        assertThat(XmlCallScanner.typed("null", type("string")).isNull()).isTrue();
        assertThat(XmlCallScanner.typed(" padded ", type("string")).asText()).isEqualTo(" padded ");
        assertThat(XmlCallScanner.typed("[1, {\"a\": null}]", type("array")).toString()).isEqualTo("[1,{\"a\":null}]");
        assertThat(XmlCallScanner.typed("{\"a\": 1} trailing", type("object")).asText()).isEqualTo("{\"a\": 1} trailing");
        assertThat(XmlCallScanner.typed("7", null).asText()).isEqualTo("7");
        assertThat(XmlCallScanner.typed("7", Json.object()).isTextual()).isTrue();
    }

    /**
     * Schemas without a type of their own, as pydantic writes them: an Optional's anyOf reads as its
     * type that is not null, a nested model's {@code $ref} or an enum as JSON where the text is JSON.
     */
    @Test
    void valuesOfUnionsAndReferencesAreTypedByWhatTheyHold() {
        JsonNode optionalInteger = TestServer.parse("{\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"null\"}]}");
        assertThat(XmlCallScanner.typed("5", optionalInteger).toString()).isEqualTo("5");
        assertThat(XmlCallScanner.typed("null", optionalInteger).isNull()).isTrue();
        JsonNode optionalString = TestServer.parse("{\"anyOf\": [{\"type\": \"null\"}, {\"type\": \"string\"}]}");
        assertThat(XmlCallScanner.typed("123", optionalString).asText()).isEqualTo("123");
        assertThat(XmlCallScanner.typed("123", optionalString).isTextual()).isTrue();
        JsonNode model = TestServer.parse("{\"$ref\": \"#/$defs/Item\"}");
        assertThat(XmlCallScanner.typed("{\"sku\": \"AB1\", \"count\": 2}", model).toString())
                .isEqualTo("{\"sku\":\"AB1\",\"count\":2}");
        JsonNode optionalModel = TestServer.parse("{\"anyOf\": [{\"$ref\": \"#/$defs/Item\"}, {\"type\": \"null\"}]}");
        assertThat(XmlCallScanner.typed("{\"count\": 2}", optionalModel).isObject()).isTrue();
        JsonNode levels = TestServer.parse("{\"enum\": [1, 2, \"high\"]}");
        assertThat(XmlCallScanner.typed("2", levels).toString()).isEqualTo("2");
        assertThat(XmlCallScanner.typed("high", levels).asText()).isEqualTo("high");
    }

    private static JsonNode type(String name) {
        return Json.object().put("type", name);
    }

    /** Each call's name and its arguments parsed, so that JSON spelled differently compares equal. */
    private static List<String> parsed(List<Call> calls) {
        List<String> out = new ArrayList<>();
        for (Call call : calls) {
            out.add(call.name() + " " + TestServer.parse(call.arguments()));
        }
        return out;
    }

    private static final Pattern BLOCK = Pattern.compile("<tool_call>(.*?)(?:</tool_call>|$)", Pattern.DOTALL);
    private static final Pattern FUNCTION = Pattern.compile("<function=([^>]*)>(.*?)(?:</function>|$)", Pattern.DOTALL);
    private static final Pattern PARAMETER = Pattern.compile(
            "<parameter=([^>]*)>(.*?)(?:</parameter>|(?=<parameter=)|(?=</function>)|$)", Pattern.DOTALL);

    /**
     * The calls of a whole output as a plain reader finds them: each block that begins with a whole
     * function tag, its functions, their parameters, each value less one new line at either end and
     * typed by the schema.
     */
    private static List<Call> reference(String output) {
        List<Call> calls = new ArrayList<>();
        Matcher blocks = BLOCK.matcher(output);
        while (blocks.find()) {
            String inside = blocks.group(1);
            if (!inside.strip().startsWith("<function=") || !inside.contains(">")) {
                continue;
            }
            Matcher functions = FUNCTION.matcher(inside);
            while (functions.find()) {
                String name = functions.group(1).strip();
                ObjectNode arguments = Json.object();
                Matcher parameters = PARAMETER.matcher(functions.group(2));
                while (parameters.find()) {
                    String value = parameters.group(2);
                    value = value.startsWith("\n") ? value.substring(1) : value;
                    value = value.endsWith("\n") ? value.substring(0, value.length() - 1) : value;
                    String key = parameters.group(1).strip();
                    JsonNode schema = PROPERTIES.getOrDefault(name, Json.object()).get(key);
                    arguments.set(key, XmlCallScanner.typed(value, schema));
                }
                calls.add(new Call(name, arguments.toString()));
            }
        }
        return calls;
    }
}
