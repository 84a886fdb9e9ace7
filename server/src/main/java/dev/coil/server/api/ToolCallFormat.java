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
    HERMES("hermes", "<tool_call>", "</tool_call>", false),

    /**
     * NVIDIA Nemotron Nano 2's (a Nemotron-H hybrid): a JSON array of such objects between
     * {@code <TOOLCALL>} and {@code </TOOLCALL>}, one block for all the calls of a turn.
     */
    NEMOTRON_JSON("nemotron_json", "<TOOLCALL>", "</TOOLCALL>", true);

    private final String parserName;
    private final String startTag;
    private final String endTag;
    private final boolean listed;

    ToolCallFormat(String parserName, String startTag, String endTag, boolean listed) {
        this.parserName = parserName;
        this.startTag = startTag;
        this.endTag = endTag;
        this.listed = listed;
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
