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
    HERMES("hermes", "<tool_call>", "</tool_call>");

    private final String parserName;
    private final String startTag;
    private final String endTag;

    ToolCallFormat(String parserName, String startTag, String endTag) {
        this.parserName = parserName;
        this.startTag = startTag;
        this.endTag = endTag;
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

    /** The format {@code --tool-call-parser NAME} names; a clear error for any other name. */
    public static ToolCallFormat named(String name) {
        for (ToolCallFormat format : values()) {
            if (format.parserName.equals(name.toLowerCase(Locale.ROOT))) {
                return format;
            }
        }
        throw new IllegalArgumentException("--tool-call-parser must be one of " + Arrays.stream(values())
                .map(ToolCallFormat::parserName).collect(Collectors.joining(", ")) + ", got " + name);
    }
}
