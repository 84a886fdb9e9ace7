package dev.coil.server.api;

/**
 * Splits one choice's output into its reasoning and its answer ({@link ReasoningFormat}), as it
 * streams. The output is reasoning from its start when the prompt left a reasoning block open, or when
 * the output itself begins with the start tag; the reasoning ends at the end tag (left out), and the
 * rest is the answer. An output that neither begins in reasoning nor with the start tag is all answer.
 * With a call tag (Qwen3's and Nemotron 3's {@code <tool_call>}, under {@code qwen3_coder}), that tag
 * ends the reasoning too, as vLLM's parsers of those models take it, and begins the answer: a model
 * that calls before it closes its block still makes its call.
 * What it gives back does not depend on how the output is cut into pieces: a piece's tail that may
 * begin a tag is held until the next piece says. Not thread-safe: one reader per choice.
 */
final class ReasoningReader {

    /** What one piece of output gave back: reasoning and answer text, either possibly empty. */
    record Split(String reasoning, String answer) {
    }

    private enum Part { MAY_OPEN, REASONING, ANSWER }

    private final ReasoningFormat format;
    /** A tag that ends the reasoning and stays in the answer, or null. */
    private final String callTag;
    private final StringBuilder pending = new StringBuilder();
    private Part part;
    private boolean reasoned;

    /** @param opened whether the prompt left a reasoning block open ({@link ReasoningFormat#opensIn}) */
    ReasoningReader(ReasoningFormat format, boolean opened) {
        this(format, opened, null);
    }

    /** @param callTag a call's start tag, which ends the reasoning and begins the answer; or null */
    ReasoningReader(ReasoningFormat format, boolean opened, String callTag) {
        this.format = format;
        this.callTag = callTag;
        this.part = opened ? Part.REASONING : Part.MAY_OPEN;
        this.reasoned = opened;
    }

    /** Whether the output began in reasoning (so that an empty answer is no answer). */
    boolean reasoned() {
        return reasoned;
    }

    /** The next piece of the output; returns what can be given back now. */
    Split feed(String text) {
        pending.append(text);
        StringBuilder reasoning = new StringBuilder();
        if (part == Part.MAY_OPEN) {
            String tag = format.startTag();
            if (pending.length() < tag.length() && tag.startsWith(pending.toString())) {
                return new Split("", "");
            }
            if (pending.indexOf(tag) == 0) {
                pending.delete(0, tag.length());
                part = Part.REASONING;
                reasoned = true;
            } else {
                part = Part.ANSWER;
            }
        }
        if (part == Part.REASONING) {
            String tag = format.endTag();
            int end = pending.indexOf(tag);
            int call = callTag == null ? -1 : pending.indexOf(callTag);
            if (end < 0 && call < 0) {
                int keep = Math.max(StreamedTags.partialTagLength(pending, tag),
                        callTag == null ? 0 : StreamedTags.partialTagLength(pending, callTag));
                reasoning.append(pending, 0, pending.length() - keep);
                pending.delete(0, pending.length() - keep);
                return new Split(reasoning.toString(), "");
            }
            if (call >= 0 && (end < 0 || call < end)) {
                reasoning.append(pending, 0, call); // the call tag stays: it begins the answer
                pending.delete(0, call);
            } else {
                reasoning.append(pending, 0, end);
                pending.delete(0, end + tag.length());
            }
            part = Part.ANSWER;
        }
        String answer = pending.toString();
        pending.setLength(0);
        return new Split(reasoning.toString(), answer);
    }

    /** The output has ended: what is still held back. */
    Split finish() {
        String rest = pending.toString();
        pending.setLength(0);
        return part == Part.REASONING ? new Split(rest, "") : new Split("", rest);
    }
}
