package dev.coil.server.api;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * How a model writes a tool call in its own text, for {@code tool_choice: "auto"}: the server's
 * {@code --tool-call-parser}, named as vLLM names its parsers.
 */
public enum ToolCallFormat {

    /**
     * Hermes 2 Pro's calls, which Granite 4.0, Qwen 2.5 and others write too: each call a JSON object
     * {@code {"name": ..., "arguments": {...}}} between {@code <tool_call>} and {@code </tool_call>}.
     */
    HERMES("hermes", "<tool_call>", "</tool_call>", false, false),

    /**
     * NVIDIA Nemotron Nano 2's (a Nemotron-H hybrid): a JSON array of such objects between
     * {@code <TOOLCALL>} and {@code </TOOLCALL>}, one block for all the calls of a turn.
     */
    NEMOTRON_JSON("nemotron_json", "<TOOLCALL>", "</TOOLCALL>", true, false),

    /**
     * Qwen3-Coder's and NVIDIA Nemotron 3 Nano's (a Nemotron-H hybrid): between {@code <tool_call>} and
     * {@code </tool_call>}, a function and its parameters as tags, {@code <function=NAME>} then
     * {@code <parameter=KEY>}value{@code </parameter>} for each, then {@code </function>}; the values
     * read by the types of the tool's parameters ({@link XmlCallScanner}).
     */
    QWEN3_CODER("qwen3_coder", "<tool_call>", "</tool_call>", false, true);

    private final String parserName;
    private final String startTag;
    private final String endTag;
    private final boolean listed;
    private final boolean tagged;

    ToolCallFormat(String parserName, String startTag, String endTag, boolean listed, boolean tagged) {
        this.parserName = parserName;
        this.startTag = startTag;
        this.endTag = endTag;
        this.listed = listed;
        this.tagged = tagged;
    }

    /** The name {@code --tool-call-parser} takes. */
    public String parserName() {
        return parserName;
    }

    /** What opens a call. */
    String startTag() {
        return startTag;
    }

    /** What closes a call. */
    String endTag() {
        return endTag;
    }

    /** Whether a block holds a JSON array of calls (else one call, an object). */
    boolean listed() {
        return listed;
    }

    /** Whether calls are tags (a function and its parameters) rather than JSON. */
    boolean tagged() {
        return tagged;
    }

    /**
     * A reader of one block's calls: JSON, or tags whose values {@code properties} types (each tool's
     * {@code parameters.properties} by its name).
     */
    BlockScanner scanner(java.util.Map<String, com.fasterxml.jackson.databind.JsonNode> properties) {
        return tagged ? new XmlCallScanner(properties) : new CallScanner(listed);
    }

    /** The format {@code --tool-call-parser NAME} names; a clear error for any other name. */
    public static ToolCallFormat named(String name) {
        for (ToolCallFormat format : values()) {
            if (format.parserName.equals(name.toLowerCase(Locale.ROOT).replace('-', '_'))) {
                return format;
            }
        }
        throw new IllegalArgumentException("--tool-call-parser must be one of " + parserNames() + ", got " + name);
    }

    /** The names {@code --tool-call-parser} takes, comma-separated. */
    public static String parserNames() {
        return Arrays.stream(values()).map(ToolCallFormat::parserName).collect(Collectors.joining(", "));
    }
}
