package dev.coil.server.api;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * How a model sets its reasoning apart from its answer: the server's {@code --reasoning-parser}.
 * Every format Coil reads is a {@code <think>} block; the names are vLLM's parsers of it.
 */
public enum ReasoningFormat {

    /**
     * Reasoning between {@code <think>} and {@code </think>}, as DeepSeek R1, Qwen 3 and NVIDIA
     * Nemotron Nano 2 and Nemotron 3 write it. The start tag may be the prompt's (the chat template
     * opens the block, as Nemotron Nano 2's does unless told {@code /no_think}), or the answer's first
     * text; a prompt whose block is already closed (thinking turned off) leaves the answer all answer.
     */
    THINK(List.of("deepseek_r1", "qwen3", "nemotron_v3", "nano_v3"), "<think>", "</think>");

    private final List<String> parserNames;
    private final String startTag;
    private final String endTag;

    ReasoningFormat(List<String> parserNames, String startTag, String endTag) {
        this.parserNames = parserNames;
        this.startTag = startTag;
        this.endTag = endTag;
    }

    String startTag() {
        return startTag;
    }

    String endTag() {
        return endTag;
    }

    /**
     * Whether a prompt leaves its answer inside a reasoning block: no end tag follows its last start
     * tag.
     */
    boolean opensIn(String prompt) {
        int start = prompt.lastIndexOf(startTag);
        return start >= 0 && prompt.indexOf(endTag, start) < 0;
    }

    /** The format {@code --reasoning-parser NAME} names; a clear error for any other name. */
    public static ReasoningFormat named(String name) {
        String wanted = name.toLowerCase(Locale.ROOT).replace('-', '_');
        for (ReasoningFormat format : values()) {
            if (format.parserNames.contains(wanted)) {
                return format;
            }
        }
        throw new IllegalArgumentException("--reasoning-parser must be one of " + Arrays.stream(values())
                .flatMap(format -> format.parserNames.stream()).collect(Collectors.joining(", ")) + ", got " + name);
    }
}
