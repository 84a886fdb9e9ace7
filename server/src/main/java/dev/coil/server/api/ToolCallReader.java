package dev.coil.server.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads the calls a model writes in its own text ({@link ToolCallFormat}) out of one choice's
 * output, as it streams. The output is text and blocks, each block a start tag, its inside, and an end
 * tag (or the end of the output). A call is a JSON object with a string {@code name} and an object
 * {@code arguments} (or {@code parameters}, or neither: no arguments). A block whose inside is a call
 * (or, in a format whose blocks list their calls, a non-empty JSON array of calls) gives its calls; any
 * other block is text, tags and all.
 * <p>
 * What the reader gives back does not depend on how the output is cut into pieces: fed whole or a
 * character at a time, the same calls come out and the text pieces join to the same content. The
 * content is the output's text outside the calls; once a call is made, without its trailing
 * whitespace (the new lines between a sentence and its calls), and nothing when that leaves it blank.
 * So the reader holds back a piece's trailing whitespace until more text follows or the output ends,
 * and the end of a piece that could be the start of a start tag until the next piece says.
 * Not thread-safe: one reader per choice, fed by the thread answering it.
 */
final class ToolCallReader {

    /** A part of the output as the reader gives it back. */
    sealed interface Piece permits Text, Call {
    }

    /** Content to pass on. */
    record Text(String text) implements Piece {
    }

    /** One call: the function's name and its arguments, a JSON object's compact text. */
    record Call(String name, String arguments) implements Piece {
    }

    /** A whole output read: its content (null when a call left none) and its calls. */
    record Reading(String content, List<Call> calls) {
    }

    private final ToolCallFormat format;
    /** Output not yet given back: the inside of an open block, or what may begin a start tag. */
    private final StringBuilder pending = new StringBuilder();
    /** Text whitespace given back only once text that is not whitespace follows it, or at the end. */
    private final StringBuilder heldWhitespace = new StringBuilder();
    private boolean inBlock;
    private int calls;

    ToolCallReader(ToolCallFormat format) {
        this.format = format;
    }

    /** A whole output, read as its stream would be. */
    static Reading read(ToolCallFormat format, String output) {
        ToolCallReader reader = new ToolCallReader(format);
        List<Piece> pieces = new ArrayList<>(reader.feed(output));
        pieces.addAll(reader.finish());
        return gather(pieces);
    }

    /** All the pieces a reader gave back for one output, as its reading. */
    static Reading gather(List<Piece> pieces) {
        StringBuilder content = new StringBuilder();
        List<Call> calls = new ArrayList<>();
        for (Piece piece : pieces) {
            switch (piece) {
                case Text text -> content.append(text.text());
                case Call call -> calls.add(call);
            }
        }
        return new Reading(calls.isEmpty() || !content.isEmpty() ? content.toString() : null, List.copyOf(calls));
    }

    /** How many calls have been given back. */
    int calls() {
        return calls;
    }

    /** The next piece of the output; returns what can be given back now. */
    List<Piece> feed(String text) {
        pending.append(text);
        List<Piece> pieces = new ArrayList<>();
        while (true) {
            if (inBlock) {
                int end = pending.indexOf(format.endTag());
                if (end < 0) {
                    return pieces;
                }
                closeBlock(pending.substring(0, end), true, pieces);
                pending.delete(0, end + format.endTag().length());
                inBlock = false;
            } else {
                int start = pending.indexOf(format.startTag());
                if (start < 0) {
                    // Give back all but a tail that may be the start tag's beginning.
                    int keep = StreamedTags.partialTagLength(pending, format.startTag());
                    addText(pending.substring(0, pending.length() - keep), pieces);
                    pending.delete(0, pending.length() - keep);
                    return pieces;
                }
                addText(pending.substring(0, start), pieces);
                pending.delete(0, start + format.startTag().length());
                inBlock = true;
            }
        }
    }

    /** The output has ended: what is still held back. */
    List<Piece> finish() {
        List<Piece> pieces = new ArrayList<>();
        if (inBlock) {
            closeBlock(pending.toString(), false, pieces);
            inBlock = false;
        } else {
            addText(pending.toString(), pieces);
        }
        pending.setLength(0);
        if (calls == 0 && !heldWhitespace.isEmpty()) {
            pieces.add(new Text(heldWhitespace.toString()));
        }
        heldWhitespace.setLength(0);
        return pieces;
    }

    /** A block's inside: its calls, or text as written (its end tag too when it had one). */
    private void closeBlock(String inside, boolean closed, List<Piece> pieces) {
        List<Call> made = calls(inside);
        if (made != null) {
            calls += made.size();
            pieces.addAll(made);
        } else {
            addText(format.startTag() + inside + (closed ? format.endTag() : ""), pieces);
        }
    }

    /** The calls a block's inside spells, or null when it is no call (or no list of them). */
    private List<Call> calls(String inside) {
        JsonNode value;
        try {
            value = Json.READER.readTree(inside);
        } catch (JsonProcessingException notJson) {
            return null;
        }
        if (value == null) {
            return null;
        }
        if (!format.listed()) {
            Call call = call(value);
            return call == null ? null : List.of(call);
        }
        if (!value.isArray() || value.isEmpty()) {
            return null;
        }
        List<Call> listed = new ArrayList<>();
        for (JsonNode element : value) {
            Call call = call(element);
            if (call == null) {
                return null;
            }
            listed.add(call);
        }
        return listed;
    }

    /** The call a JSON value spells, or null. */
    private static Call call(JsonNode object) {
        if (!object.isObject() || !object.path("name").isTextual()) {
            return null;
        }
        JsonNode arguments = object.has("arguments") ? object.get("arguments") : object.get("parameters");
        if (arguments == null) {
            arguments = Json.object();
        }
        if (!arguments.isObject()) {
            return null;
        }
        return new Call(object.get("name").textValue(), arguments.toString());
    }

    /** Text outside blocks: given back, but its trailing whitespace held. */
    private void addText(String text, List<Piece> pieces) {
        int end = text.length();
        while (end > 0 && Character.isWhitespace(text.charAt(end - 1))) {
            end--;
        }
        if (end > 0) {
            pieces.add(new Text(heldWhitespace + text.substring(0, end)));
            heldWhitespace.setLength(0);
        }
        heldWhitespace.append(text, end, text.length());
    }
}
