package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.Finished;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import dev.coil.engine.runner.FinishReason;
import java.io.IOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * An answer of OpenAI's Responses API, made from the chat answer its request stands for ({@code shape}
 * reads that answer as chat would: reasoning split off, calls found): whole, a {@code response}
 * object whose output items are the answer's {@link AnswerBlocks} (a reasoning item, a message, a
 * function_call each); streamed, OpenAI's typed events, each an {@code event:} line and its JSON numbered by
 * {@code sequence_number}: response.created and response.in_progress, each output item's events (added,
 * its part added, its deltas, their .done events, done), then
 * response.completed (or response.incomplete when max_output_tokens cut it). The response echoes the
 * request's settings ({@code echo}) and carries Coil's {@code timings} and {@code paths} as chat does.
 *
 * <p>With logprobs asked for (include {@code message.output_text.logprobs}), a message's output_text
 * carries the logprobs of the tokens that wrote its text, and each text delta those of the tokens it
 * brings: a token whose text is held back (a stop string's start) goes with the text that comes after
 * it; one whose text went to the reasoning or a call only is not the message's, nor is one that added
 * no text at the end (the end-of-sequence token). The whole answer's are read by passing its tokens
 * through the same blocks as the stream does.
 *
 * <p>A stored response is handed to {@code storing} once it is finished, whole or streamed; a
 * background one's earlier states (queued, in progress, cancelled, failed) through {@link #store}.
 */
final class ResponsesAnswer implements AnswerFormat {

    private final String id = ResponseInput.newId("resp_");
    private final long createdAt = Instant.now().getEpochSecond();
    private final String model;
    private final ObjectNode echo;
    private final ResponseShape shape;
    private final ChoiceState choice;
    private final AnswerBlocks streamed;
    /** How logprobs spell tokens, or null: none asked for. */
    private final TokenSpelling logprobs;
    /** Told the finished response, to store it; or null. */
    private final Consumer<ObjectNode> storing;
    /** Each block's item id, by the block's index. */
    private final List<String> itemIds = new ArrayList<>();
    /** Each text block's logprobs entries so far, by the block's index (null for other blocks). */
    private final List<ArrayNode> blockLogprobs = new ArrayList<>();
    /** Tokens whose text has not yet reached a block (held back), in order. */
    private final List<PositionLogprobs> pending = new ArrayList<>();
    /** Whether the token being read grew a reasoning or call block. */
    private boolean grewElsewhere;
    private SseWriter sse;
    private int sequence;

    /**
     * @param echo  the request's settings the response repeats (OpenAI's fields)
     * @param shape     how the chat API would answer the request's one choice
     * @param logprobs  how the message's logprobs spell tokens, or null: none asked for
     * @param storing   told the response once it is finished (its output whole), or null: not stored
     */
    ResponsesAnswer(String model, ObjectNode echo, ResponseShape shape, ChoiceState choice, TokenSpelling logprobs,
            Consumer<ObjectNode> storing) {
        this.model = model;
        this.echo = echo;
        this.shape = shape;
        this.choice = choice;
        this.logprobs = logprobs;
        this.storing = storing;
        this.streamed = new AnswerBlocks(shape, choice, listener);
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public String operation() {
        return "responses";
    }

    @Override
    public String promptParam() {
        return "input";
    }

    @Override
    public ObjectNode whole() {
        List<AnswerBlocks.Block> blocks;
        if (logprobs == null) {
            blocks = AnswerBlocks.whole(shape, choice);
            if (blocks.isEmpty()) {
                blocks.add(new AnswerBlocks.Block(AnswerBlocks.Kind.TEXT, null, null, ""));
            }
        } else {
            blocks = replayed();
        }
        return finished(response(items(blocks)));
    }

    /**
     * The blocks of the whole answer read as its stream is, token by token, so that each text block
     * gathers its tokens' logprobs; nothing is sent.
     */
    private List<AnswerBlocks.Block> replayed() {
        try {
            AnswerBlocks replay = new AnswerBlocks(shape, choice, listener);
            replay.opening();
            List<String> texts = choice.logprobTexts();
            for (int i = 0; i < texts.size(); i++) {
                read(replay, texts.get(i), choice.logprobs().get(i));
            }
            replay.last(choice.finished().text(), true);
            return replay.blocks();
        } catch (IOException e) {
            throw new IllegalStateException("nothing is written while a whole answer is read", e);
        }
    }

    /** A token read into {@code blocks}: its logprobs wait for the text block it (or a later token) grows. */
    private void read(AnswerBlocks blocks, String text, PositionLogprobs position) throws IOException {
        if (position != null && logprobs != null) {
            pending.add(position);
        }
        grewElsewhere = false;
        blocks.token(text);
        if (grewElsewhere) {
            pending.clear();
        }
    }

    /** The finished response, stored when it is to be. */
    private ObjectNode finished(ObjectNode response) {
        if (storing != null) {
            storing.accept(response);
        }
        return response;
    }

    @Override
    public void open(SseWriter writer) throws IOException {
        this.sse = writer;
        send("response.created", Json.object().set("response", response(null)));
        send("response.in_progress", Json.object().set("response", response(null)));
        streamed.opening();
    }

    @Override
    public void prompt(SseWriter writer, ChoiceState state) {
    }

    @Override
    public void token(SseWriter writer, ChoiceState state, String text, PositionLogprobs position) throws IOException {
        read(streamed, text, position);
    }

    @Override
    public void finished(SseWriter writer, ChoiceState state, String text, boolean allEnded) throws IOException {
        streamed.last(text, true);
    }

    @Override
    public void failed(SseWriter writer, ApiException error) throws IOException {
        ObjectNode event = Json.object().put("type", "error").put("code", error.code())
                .put("message", error.getMessage());
        event.put("param", error.param());
        event.put("sequence_number", sequence++);
        writer.event("error", event);
        writer.end();
    }

    @Override
    public void close(SseWriter writer) throws IOException {
        ObjectNode whole = finished(response(items(streamed.blocks())));
        send(cut() ? "response.incomplete" : "response.completed", Json.object().set("response", whole));
        writer.end();
    }


    /** The events of the streamed blocks' items. */
    private final AnswerBlocks.Listener listener = new AnswerBlocks.Listener() {
        @Override
        public void opened(int index, AnswerBlocks.Block block) throws IOException {
            send("response.output_item.added", Json.object().put("output_index", index)
                    .set("item", item(index, block, "in_progress")));
            if (block.kind != AnswerBlocks.Kind.CALL) {
                send("response.content_part.added", part(index).set("part", part(block.kind, "", null)));
            }
        }

        @Override
        public void grew(int index, AnswerBlocks.Block block, String piece) throws IOException {
            switch (block.kind) {
                case TEXT -> {
                    ArrayNode entries = entries(pending);
                    pending.clear();
                    logprobsOf(index).addAll(entries);
                    send("response.output_text.delta", part(index).put("delta", piece).set("logprobs", entries));
                }
                case REASONING -> {
                    grewElsewhere = true;
                    send("response.reasoning_text.delta", part(index).put("delta", piece));
                }
                case CALL -> {
                    grewElsewhere = true;
                    send("response.function_call_arguments.delta", Json.object()
                        .put("item_id", id(index, block)).put("output_index", index).put("delta", piece));
                }
            }
        }

        @Override
        public void closed(int index, AnswerBlocks.Block block) throws IOException {
            switch (block.kind) {
                case CALL -> send("response.function_call_arguments.done", Json.object()
                        .put("item_id", id(index, block)).put("output_index", index).put("name", block.name)
                        .put("arguments", block.text()));
                default -> {
                    boolean text = block.kind == AnswerBlocks.Kind.TEXT;
                    ObjectNode done = part(index).put("text", block.text());
                    if (text) {
                        done.set("logprobs", logprobsOf(index).deepCopy());
                    }
                    send(text ? "response.output_text.done" : "response.reasoning_text.done", done);
                    send("response.content_part.done", part(index).set("part", part(block.kind, block.text(),
                            text ? logprobsOf(index) : null)));
                }
            }
            send("response.output_item.done", Json.object().put("output_index", index)
                    .set("item", item(index, block, status(block))));
        }
    };

    /** The output items of {@code blocks}, whole. */
    private ArrayNode items(List<AnswerBlocks.Block> blocks) {
        ArrayNode items = Json.object().arrayNode();
        for (int i = 0; i < blocks.size(); i++) {
            items.add(item(i, blocks.get(i), status(blocks.get(i))));
        }
        return items;
    }

    /** A text block cut by max_output_tokens is incomplete; the others are complete once whole. */
    private String status(AnswerBlocks.Block block) {
        return block.kind == AnswerBlocks.Kind.TEXT && cut() ? "incomplete" : "completed";
    }

    /**
     * Block {@code index} as an output item: a message, a reasoning item or a function_call, with no
     * part yet while in progress.
     */
    private ObjectNode item(int index, AnswerBlocks.Block block, String status) {
        boolean inProgress = status.equals("in_progress");
        ObjectNode item = Json.object().put("id", id(index, block));
        switch (block.kind) {
            case TEXT -> item.put("type", "message").put("role", "assistant");
            case REASONING -> item.put("type", "reasoning").putArray("summary");
            case CALL -> {
                return item.put("type", "function_call").put("call_id", block.callId).put("name", block.name)
                        .put("arguments", inProgress ? "" : block.text()).put("status", status);
            }
        }
        item.put("status", status);
        ArrayNode content = item.putArray("content");
        if (!inProgress) {
            content.add(part(block.kind, block.text(), block.kind == AnswerBlocks.Kind.TEXT ? logprobsOf(index) : null));
        }
        return item;
    }

    /** Block {@code index}'s item id, made when first asked for: msg_, rs_ or fc_ and 32 hex digits. */
    private String id(int index, AnswerBlocks.Block block) {
        while (itemIds.size() <= index) {
            itemIds.add(null);
        }
        if (itemIds.get(index) == null) {
            String prefix = switch (block.kind) {
                case TEXT -> "msg_";
                case REASONING -> "rs_";
                case CALL -> "fc_";
            };
            itemIds.set(index, ResponseInput.newId(prefix));
        }
        return itemIds.get(index);
    }

    /** The fields of an event about the one part of item {@code index}. */
    private ObjectNode part(int index) {
        return Json.object().put("item_id", itemIds.get(index)).put("output_index", index).put("content_index", 0);
    }

    /** A content part: reasoning_text, or output_text with its logprobs entries (null: none yet). */
    private static ObjectNode part(AnswerBlocks.Kind kind, String text, ArrayNode logprobs) {
        if (kind == AnswerBlocks.Kind.REASONING) {
            return Json.object().put("type", "reasoning_text").put("text", text);
        }
        ObjectNode part = Json.object().put("type", "output_text").put("text", text);
        part.putArray("annotations");
        part.set("logprobs", logprobs == null ? Json.object().arrayNode() : logprobs.deepCopy());
        return part;
    }

    /** Text block {@code index}'s logprobs entries so far. */
    private ArrayNode logprobsOf(int index) {
        while (blockLogprobs.size() <= index) {
            blockLogprobs.add(null);
        }
        if (blockLogprobs.get(index) == null) {
            blockLogprobs.set(index, Json.object().arrayNode());
        }
        return blockLogprobs.get(index);
    }

    /** OpenAI's logprobs entries of {@code positions}: token, logprob, bytes and top_logprobs, as chat's. */
    private ArrayNode entries(List<PositionLogprobs> positions) {
        if (positions.isEmpty()) {
            return Json.object().arrayNode();
        }
        return (ArrayNode) LogprobsJson.chat(logprobs, positions).get("content");
    }

    private boolean cut() {
        Finished finished = choice.finished();
        return finished != null && finished.reason() == FinishReason.LENGTH;
    }

    /**
     * A background response's state, stored: {@code status} queued, in_progress, cancelled or failed
     * (with {@code error}), its output empty; returned as stored.
     */
    ObjectNode store(String status, ApiException error) {
        ObjectNode response = response(Json.object().arrayNode(), status, error);
        if (storing != null) {
            storing.accept(response);
        }
        return response;
    }

    /**
     * The response object: in progress (no output yet, {@code output} null) until the choice ended,
     * then completed or incomplete.
     */
    private ObjectNode response(ArrayNode output) {
        Finished finished = output == null ? null : choice.finished();
        return response(output == null ? Json.object().arrayNode() : output,
                finished == null ? "in_progress" : cut() ? "incomplete" : "completed", null);
    }

    /** The response object of {@code status}, usage and timings once the choice ended with it. */
    private ObjectNode response(ArrayNode output, String status, ApiException error) {
        boolean ended = status.equals("completed") || status.equals("incomplete");
        Finished finished = ended ? choice.finished() : null;
        ObjectNode response = Json.object();
        response.put("id", id);
        response.put("object", "response");
        response.put("created_at", createdAt);
        response.put("status", status);
        if (error == null) {
            response.putNull("error");
        } else {
            response.putObject("error").put("code", error.code() == null ? error.type() : error.code())
                    .put("message", error.getMessage());
        }
        if (finished != null && cut()) {
            response.putObject("incomplete_details").put("reason", "max_output_tokens");
        } else {
            response.putNull("incomplete_details");
        }
        response.put("model", model);
        response.set("output", output);
        response.put("truncation", "disabled");
        response.setAll(echo);
        if (finished != null) {
            response.set("usage", usage(finished));
            ResponseEnvelope.addExtras(response, List.of(choice));
        } else {
            response.putNull("usage");
        }
        return response;
    }

    private static ObjectNode usage(Finished finished) {
        int input = finished.usage().promptTokens();
        int output = finished.usage().completionTokens();
        ObjectNode usage = Json.object();
        usage.put("input_tokens", input);
        usage.putObject("input_tokens_details").put("cached_tokens", finished.usage().cachedPromptTokens())
                .put("cache_write_tokens", 0);
        usage.put("output_tokens", output);
        usage.putObject("output_tokens_details").put("reasoning_tokens", 0);
        usage.put("total_tokens", input + output);
        return usage;
    }

    /** One typed event: its name is its {@code type}, numbered in the stream's order; none in a whole answer. */
    private void send(String type, ObjectNode event) throws IOException {
        if (sse == null) {
            return;
        }
        ObjectNode typed = Json.object().put("type", type);
        typed.setAll(event);
        typed.put("sequence_number", sequence++);
        sse.event(type, typed);
    }
}
