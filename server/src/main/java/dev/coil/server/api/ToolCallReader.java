package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Reads the calls a model writes in its own text ({@link ToolCallFormat}) out of one choice's
 * output, as it streams. The output is text and blocks, each block a start tag, its inside, and an end
 * tag (or the end of the output). A call is a JSON object with a string {@code name} and an object
 * {@code arguments} (or {@code parameters}, or neither: no arguments), read by a {@link CallScanner}
 * as it comes (or, in a tagged format, a function and its parameters as tags, read by an
 * {@link XmlCallScanner}): a call's name is given back once its arguments begin, and its arguments piece by piece
 * after it, as vLLM streams them. A block the scanner finds broken before its first call is made is
 * text, tags and all.
 * <p>
 * What the reader gives back does not depend on how the output is cut into pieces: fed whole or a
 * character at a time, the same calls come out and the pieces join to the same content and
 * arguments. The content is the output's text outside the calls; once a call is made, without its
 * trailing whitespace (the new lines between a sentence and its calls), and nothing when that leaves
 * it blank. So the reader holds back a piece's trailing whitespace until more text follows or the
 * output ends, and the end of a piece that could be the start of a tag until the next piece says.
 * Not thread-safe: one reader per choice, fed by the thread answering it.
 */
final class ToolCallReader {

    /** A part of the output as the reader gives it back: content, or a call's start or arguments. */
    sealed interface Piece permits Text, CallScanner.Start, CallScanner.Arguments {
    }

    /** Content to pass on. */
    record Text(String text) implements Piece {
    }

    /** One call: the function's name and its arguments, a JSON object as written but for whitespace between tokens. */
    record Call(String name, String arguments) {
    }

    /** A whole output read: its content (null when a call left none) and its calls. */
    record Reading(String content, List<Call> calls) {
    }

    private final ToolCallFormat format;
    /** Each tool's {@code parameters.properties} by the tool's name, for formats whose values are typed by them. */
    private final Map<String, JsonNode> properties;
    /** Output not yet given back: what may begin a start tag, or the end tag inside an open block. */
    private final StringBuilder pending = new StringBuilder();
    /** Text whitespace given back only once text that is not whitespace follows it, or at the end. */
    private final StringBuilder heldWhitespace = new StringBuilder();
    /** The open block's reader, or null outside blocks. */
    private BlockScanner block;
    /** The open block's inside so far, while no call of it is made: its text if it is none. */
    private final StringBuilder inside = new StringBuilder();
    private int calls;

    ToolCallReader(ToolCallFormat format) {
        this(format, Map.of());
    }

    /** @param properties each tool's {@code parameters.properties} by its name (what types tagged values) */
    ToolCallReader(ToolCallFormat format, Map<String, JsonNode> properties) {
        this.format = format;
        this.properties = properties;
    }

    /** A whole output, read as its stream would be. */
    static Reading read(ToolCallFormat format, String output) {
        return read(format, Map.of(), output);
    }

    /** As above, tagged values typed by {@code properties}. */
    static Reading read(ToolCallFormat format, Map<String, JsonNode> properties, String output) {
        ToolCallReader reader = new ToolCallReader(format, properties);
        List<Piece> pieces = new ArrayList<>(reader.feed(output));
        pieces.addAll(reader.finish());
        return gather(pieces);
    }

    /** All the pieces a reader gave back for one output, as its reading. */
    static Reading gather(List<Piece> pieces) {
        StringBuilder content = new StringBuilder();
        List<CallScanner.Event> events = new ArrayList<>();
        for (Piece piece : pieces) {
            switch (piece) {
                case Text text -> content.append(text.text());
                case CallScanner.Event event -> events.add(event);
            }
        }
        List<Call> calls = CallScanner.calls(events);
        return new Reading(calls.isEmpty() || !content.isEmpty() ? content.toString() : null, List.copyOf(calls));
    }

    /** How many calls have begun. */
    int calls() {
        return calls;
    }

    /** The next piece of the output; returns what can be given back now. */
    List<Piece> feed(String text) {
        pending.append(text);
        List<Piece> pieces = new ArrayList<>();
        while (true) {
            if (block != null) {
                int end = pending.indexOf(format.endTag());
                // Up to the end tag, or all but a tail that may be its beginning.
                int readable = end >= 0 ? end : pending.length() - StreamedTags.partialTagLength(pending, format.endTag());
                scan(pending.substring(0, readable), pieces);
                if (end < 0) {
                    pending.delete(0, readable);
                    return pieces;
                }
                pending.delete(0, end + format.endTag().length());
                closeBlock(true, pieces);
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
                block = format.scanner(properties);
                inside.setLength(0);
            }
        }
    }

    /** The output has ended: what is still held back. */
    List<Piece> finish() {
        List<Piece> pieces = new ArrayList<>();
        if (block != null) {
            scan(pending.toString(), pieces);
            closeBlock(false, pieces);
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

    /** Text inside the open block, through its scanner. */
    private void scan(String text, List<Piece> pieces) {
        if (block.made() == 0) {
            inside.append(text);
        }
        take(block.feed(text), pieces);
    }

    private void take(List<CallScanner.Event> events, List<Piece> pieces) {
        for (CallScanner.Event event : events) {
            if (event instanceof CallScanner.Start) {
                calls++;
            }
            pieces.add((Piece) event);
        }
    }

    /** The block has ended: with no call made, it is text as written (its end tag too when it had one). */
    private void closeBlock(boolean closed, List<Piece> pieces) {
        take(block.finish(), pieces);
        if (block.made() == 0) {
            addText(format.startTag() + inside + (closed ? format.endTag() : ""), pieces);
        }
        block = null;
        inside.setLength(0);
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
