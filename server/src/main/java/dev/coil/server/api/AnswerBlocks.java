package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * A chat answer as the Responses and Messages APIs give it: blocks in order, the reasoning a reasoning
 * parser split off, the text, and each call (its id, name and arguments). Whole, from the chat
 * message ({@link #whole}); streamed, from the chat deltas in order: a block opens when
 * its first piece comes, grows by each piece, and closes when a piece of another block starts or the
 * answer ends, so that the blocks come out as the whole answer's do. A {@link Listener} hears each.
 */
final class AnswerBlocks {

    enum Kind { REASONING, TEXT, CALL }

    /** One block: its kind, a call's id and name (null for the others), and its text so far (a call's arguments). */
    static final class Block {
        final Kind kind;
        final String callId;
        final String name;
        final StringBuilder text = new StringBuilder();

        Block(Kind kind, String callId, String name, String text) {
            this.kind = kind;
            this.callId = callId;
            this.name = name;
            this.text.append(text);
        }

        String text() {
            return text.toString();
        }
    }

    /** What a stream of blocks tells, in order: a block opened, grew by a piece, closed. Indices count from 0. */
    interface Listener {
        void opened(int index, Block block) throws IOException;

        void grew(int index, Block block, String piece) throws IOException;

        void closed(int index, Block block) throws IOException;
    }

    private final ResponseShape shape;
    private final ChoiceState choice;
    private final Listener listener;
    private final List<Block> blocks = new ArrayList<>();
    /** The block being streamed, or null. */
    private Block open;

    /**
     * The blocks of {@code choice}'s answer as {@code shape} (the chat API's reading of it) streams it,
     * told to {@code listener}.
     */
    AnswerBlocks(ResponseShape shape, ChoiceState choice, Listener listener) {
        this.shape = shape;
        this.choice = choice;
        this.listener = listener;
    }

    /** The blocks of {@code choice}'s whole answer as {@code shape} reads it. */
    static List<Block> whole(ResponseShape shape, ChoiceState choice) {
        return of(shape.choice(choice).get("message"));
    }

    /** Before the answer's first token: what the chat stream's opening holds (a forced call's start). */
    void opening() throws IOException {
        feed(shape.opening(choice));
    }

    /** A token's text. */
    void token(String text) throws IOException {
        feed(shape.delta(choice, text, null));
    }

    /**
     * The answer ended with {@code text} held back: the open block closed; with {@code textWhenEmpty},
     * an empty text block where none came.
     */
    void last(String text, boolean textWhenEmpty) throws IOException {
        feed(shape.last(choice, text));
        finish(textWhenEmpty);
    }

    /** A chat chunk's delta (a chunk may be null: nothing to tell). */
    private void feed(JsonNode chunk) throws IOException {
        if (chunk != null && chunk.get("delta") != null) {
            feedDelta(chunk.get("delta"));
        }
    }

    /** The blocks of a whole chat {@code message}: its reasoning, its text (when not empty), its calls. */
    static List<Block> of(JsonNode message) {
        List<Block> blocks = new ArrayList<>();
        String reasoning = message.path("reasoning_content").asText("");
        if (!reasoning.isEmpty()) {
            blocks.add(new Block(Kind.REASONING, null, null, reasoning));
        }
        String content = message.path("content").asText("");
        if (!content.isEmpty()) {
            blocks.add(new Block(Kind.TEXT, null, null, content));
        }
        for (JsonNode call : message.path("tool_calls")) {
            blocks.add(new Block(Kind.CALL, call.get("id").asText(), call.at("/function/name").asText(),
                    call.at("/function/arguments").asText()));
        }
        return blocks;
    }

    /** The blocks streamed so far. */
    List<Block> blocks() {
        return blocks;
    }

    /** One chat delta's pieces: reasoning, text, calls' starts and arguments. */
    private void feedDelta(JsonNode delta) throws IOException {
        String reasoning = delta.path("reasoning_content").asText("");
        if (!reasoning.isEmpty()) {
            grow(Kind.REASONING, reasoning);
        }
        String content = delta.path("content").asText("");
        if (!content.isEmpty()) {
            grow(Kind.TEXT, content);
        }
        for (JsonNode call : delta.path("tool_calls")) {
            if (call.has("id")) {
                open(new Block(Kind.CALL, call.get("id").asText(), call.at("/function/name").asText(), ""));
            }
            String arguments = call.at("/function/arguments").asText("");
            if (!arguments.isEmpty() && open != null && open.kind == Kind.CALL) {
                open.text.append(arguments);
                listener.grew(blocks.size() - 1, open, arguments);
            }
        }
    }

    private void finish(boolean textWhenEmpty) throws IOException {
        if (open == null && blocks.isEmpty() && textWhenEmpty) {
            open(new Block(Kind.TEXT, null, null, ""));
        }
        close();
    }

    private void grow(Kind kind, String piece) throws IOException {
        if (open == null || open.kind != kind) {
            open(new Block(kind, null, null, ""));
        }
        open.text.append(piece);
        listener.grew(blocks.size() - 1, open, piece);
    }

    private void open(Block block) throws IOException {
        close();
        open = block;
        blocks.add(block);
        listener.opened(blocks.size() - 1, block);
    }

    private void close() throws IOException {
        if (open != null) {
            Block closing = open;
            open = null;
            listener.closed(blocks.size() - 1, closing);
        }
    }
}
