package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.server.api.CallScanner.Arguments;
import dev.coil.server.api.CallScanner.Start;
import dev.coil.server.api.ToolCallReader.Call;
import dev.coil.server.api.ToolCallReader.Piece;
import dev.coil.server.api.ToolCallReader.Reading;
import dev.coil.server.api.ToolCallReader.Text;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Reading a model's Hermes-format calls out of its text: which blocks are calls, what the content is,
 * and that a stream cut anywhere reads as the whole output does.
 */
class ToolCallReaderTest {

    private static final ToolCallFormat HERMES = ToolCallFormat.HERMES;

    private static final String WEATHER = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}";
    private static final Call WEATHER_CALL = new Call("get_weather", "{\"city\":\"Paris\",\"unit\":\"celsius\"}");

    /** Outputs of every kind the reader meets, each read whole and cut everywhere below. */
    private static final List<String> OUTPUTS = List.of(
            "",
            "Plain text, no call.",
            "  text with whitespace around it \n\n",
            "<tool_call>\n" + WEATHER + "\n</tool_call>",
            "Let me look.\n<tool_call>\n" + WEATHER + "\n</tool_call>\n",
            "<tool_call>" + WEATHER + "</tool_call>\n<tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}"
                    + "</tool_call>",
            "Before <tool_call>" + WEATHER + "</tool_call> between <tool_call>{\"name\": \"now\"}</tool_call> after ",
            "<tool_call>\n" + WEATHER + "\n",
            "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par",
            "<tool_call>not json</tool_call> and text",
            "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
            "<tool_call>{\"arguments\": {}}</tool_call>",
            "<tool_call>{\"name\": \"f\", \"arguments\": {}} trailing</tool_call>",
            "<tool_call>{\"name\": \"f\", \"parameters\": {\"x\": \"<tool_call>\"}}</tool_call>",
            "a < b and <tool is not <tool_call",
            "ends inside a tag <tool_ca",
            "</tool_call> before any start, then <tool_call>" + WEATHER + "</tool_call>",
            "<tool_call>{\"id\": [1, {\"x\": 2}], \"parameters\": {\"a\": [1, 2.5, null, true, \"\\u00e9\\n\"]}, "
                    + "\"name\": \"late\"}</tool_call> then text",
            "<tool_call>{\"name\": 3, \"arguments\": {}}</tool_call>",
            "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": tx, \"b\": \"c\"}}</tool_call> after",
            "é 漢字 \uD83D\uDE00 <tool_call>{\"name\": \"say\", \"arguments\": {\"text\": \"\uD83D\uDE00\"}}</tool_call>");

    /** Nemotron Nano 2's blocks: one array of calls each. */
    private static final List<String> NEMOTRON_OUTPUTS = List.of(
            "<TOOLCALL>[" + WEATHER + ", {\"name\": \"now\"}]</TOOLCALL>",
            "Sure. <TOOLCALL>[" + WEATHER + "]</TOOLCALL>\n",
            "<TOOLCALL>[" + WEATHER + "]",
            "<TOOLCALL>[]</TOOLCALL>",
            "<TOOLCALL>" + WEATHER + "</TOOLCALL>",
            "<tool_call>" + WEATHER + "</tool_call> is not this format's",
            "cut in a tag <TOOLC");

    @Test
    void nemotronBlocksListTheirCalls() {
        ToolCallFormat nemotron = ToolCallFormat.NEMOTRON_JSON;
        assertThat(ToolCallReader.read(nemotron, NEMOTRON_OUTPUTS.get(0)))
                .isEqualTo(new Reading(null, List.of(WEATHER_CALL, new Call("now", "{}"))));
        assertThat(ToolCallReader.read(nemotron, NEMOTRON_OUTPUTS.get(1)))
                .isEqualTo(new Reading("Sure.", List.of(WEATHER_CALL)));
        assertThat(ToolCallReader.read(nemotron, NEMOTRON_OUTPUTS.get(2)).calls()).containsExactly(WEATHER_CALL);
        for (String output : NEMOTRON_OUTPUTS.subList(3, NEMOTRON_OUTPUTS.size())) {
            assertThat(ToolCallReader.read(nemotron, output)).as(output).isEqualTo(new Reading(output, List.of()));
        }
        // A listed value that is no call ends the reading: the calls before it stand.
        String brokenAfterACall = "<TOOLCALL>[" + WEATHER + ", 3, {\"name\": \"now\"}]</TOOLCALL>";
        assertThat(ToolCallReader.read(nemotron, brokenAfterACall)).isEqualTo(new Reading(null, List.of(WEATHER_CALL)));
        for (String output : NEMOTRON_OUTPUTS) {
            assertCutsReadAsWhole(nemotron, output);
        }
        assertCutsReadAsWhole(nemotron, brokenAfterACall);
    }

    @Test
    void callsAreReadAndTheRestIsContent() {
        Reading plain = ToolCallReader.read(HERMES, "  text with whitespace around it \n\n");
        assertThat(plain.calls()).isEmpty();
        assertThat(plain.content()).isEqualTo("  text with whitespace around it \n\n");

        Reading one = ToolCallReader.read(HERMES, "Let me look.\n<tool_call>\n" + WEATHER + "\n</tool_call>\n");
        assertThat(one.calls()).containsExactly(WEATHER_CALL);
        assertThat(one.content()).isEqualTo("Let me look.");

        Reading onlyCalls = ToolCallReader.read(HERMES, "\n<tool_call>" + WEATHER + "</tool_call>\n<tool_call>"
                + "{\"name\": \"now\"}</tool_call>\n");
        assertThat(onlyCalls.calls()).containsExactly(WEATHER_CALL, new Call("now", "{}"));
        assertThat(onlyCalls.content()).isNull();

        Reading around = ToolCallReader.read(HERMES, OUTPUTS.get(6));
        assertThat(around.calls()).containsExactly(WEATHER_CALL, new Call("now", "{}"));
        assertThat(around.content()).isEqualTo("Before  between  after");

        assertThat(ToolCallReader.read(HERMES, "<tool_call>\n" + WEATHER + "\n").calls())
                .as("a call cut off before its end tag, whole").containsExactly(WEATHER_CALL);
        assertThat(ToolCallReader.read(HERMES, "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par"))
                .as("a call cut off in its arguments: what was read of them, as OpenAI's calls cut by the limit")
                .isEqualTo(new Reading(null, List.of(new Call("get_weather", "{\"city\":\"Par"))));
        assertThat(ToolCallReader.read(HERMES, "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": tx}}</tool_call>"))
                .as("the arguments up to where the parser finds them broken (a bad literal: at its end)")
                .isEqualTo(new Reading(null, List.of(new Call("f", "{\"a\":tx"))));
        assertThat(ToolCallReader.read(HERMES, "<tool_call>{\"name\": \"f\", \"arguments\": {}} trailing</tool_call>"))
                .as("what follows a call in its block is not read").isEqualTo(new Reading(null, List.of(new Call("f", "{}"))));
        assertThat(ToolCallReader.read(HERMES, "<tool_call>{\"id\": [1, {\"x\": 2}], \"parameters\": {\"a\": [1, 2.5, "
                + "null, true, \"\\u00e9\\n\"]}, \"name\": \"late\"}</tool_call>"))
                .as("other keys skipped; arguments before the name, held until it comes")
                .isEqualTo(new Reading(null, List.of(new Call("late", "{\"a\":[1,2.5,null,true,\"\\u00e9\\n\"]}"))));
        assertThat(ToolCallReader.read(HERMES, OUTPUTS.get(13)).calls())
                .as("parameters for arguments; a start tag inside a string")
                .containsExactly(new Call("f", "{\"x\":\"<tool_call>\"}"));
    }

    @Test
    void blocksThatAreNoCallStayTextAsWritten() {
        for (String output : List.of(
                "<tool_call>not json</tool_call> and text",
                "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
                "<tool_call>{\"arguments\": {}}</tool_call>",
                "<tool_call>{\"name\": 3, \"arguments\": {}}</tool_call>",
                "<tool_call>{\"name\": \"f\" \"arguments\": {}}</tool_call>",
                "<tool_call>{\"name\": \"get_weather\", \"argu",
                "<tool_call>   </tool_call>",
                "a < b and <tool is not <tool_call",
                "ends inside a tag <tool_ca")) {
            Reading reading = ToolCallReader.read(HERMES, output);
            assertThat(reading.calls()).as(output).isEmpty();
            assertThat(reading.content()).as(output).isEqualTo(output);
        }
    }

    @Test
    void aStreamCutAnywhereReadsAsTheWholeOutput() {
        for (String output : OUTPUTS) {
            assertCutsReadAsWhole(HERMES, output);
        }
    }

    /** Every cut of {@code output} in two, a character at a time, and 50 random cuts read as the whole. */
    private static void assertCutsReadAsWhole(ToolCallFormat format, String output) {
        Reading whole = ToolCallReader.read(format, output);
        for (List<String> cut : StreamCuts.of(output, 50)) {
            assertThat(streamed(format, cut)).as("%s cut as %s", output, cut).isEqualTo(whole);
        }
    }

    @Test
    void textIsPassedOnAsItComesExceptWhatMayStartATag() {
        ToolCallReader reader = new ToolCallReader(HERMES);
        assertThat(reader.feed("Hello")).containsExactly(new Text("Hello"));
        assertThat(reader.feed(" there <to")).containsExactly(new Text(" there"));
        assertThat(reader.feed("o much")).containsExactly(new Text(" <too much"));
        assertThat(reader.feed(" <tool_call>{\"name\": ")).isEmpty();
        assertThat(reader.feed("\"now\"}</tool_call>")).containsExactly(new Start("now"), new Arguments("{}"));
        assertThat(reader.calls()).isEqualTo(1);
        assertThat(reader.finish()).isEmpty();
    }

    @Test
    void aCallsArgumentsComeAsTheyAreWritten() {
        ToolCallReader reader = new ToolCallReader(HERMES);
        assertThat(reader.feed("<tool_call>\n{\"name\": \"get_wea")).isEmpty();
        assertThat(reader.feed("ther\", \"arguments\"")).as("the name alone does not make a call").isEmpty();
        assertThat(reader.feed(": {\"ci")).containsExactly(new Start("get_weather"), new Arguments("{\"ci"));
        assertThat(reader.feed("ty\": \"Pa ")).as("a string as it grows, its spaces kept")
                .containsExactly(new Arguments("ty\":\"Pa "));
        assertThat(reader.feed("ris\", \"days\": [1, ")).containsExactly(new Arguments("ris\",\"days\":[1,"));
        assertThat(reader.feed("2]}}\n</tool")).containsExactly(new Arguments("2]}"));
        assertThat(reader.feed("_call>")).isEmpty();
        assertThat(reader.calls()).isEqualTo(1);
        assertThat(reader.finish()).isEmpty();
    }

    /** A stream of {@code pieces} read as the server reads it, gathered as a whole reading. */
    private static Reading streamed(ToolCallFormat format, List<String> pieces) {
        ToolCallReader reader = new ToolCallReader(format);
        List<Piece> out = new ArrayList<>();
        for (String piece : pieces) {
            out.addAll(reader.feed(piece));
        }
        out.addAll(reader.finish());
        return ToolCallReader.gather(out);
    }
}
