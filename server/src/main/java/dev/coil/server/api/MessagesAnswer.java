package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.Finished;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import dev.coil.engine.runner.FinishReason;
import java.io.IOException;
import java.util.List;
import java.util.UUID;

/**
 * An answer of Anthropic's Messages API, made from the chat answer its request stands for ({@code shape}
 * reads it as chat would: reasoning split off, calls found): whole, a {@code message} whose content is
 * the answer's {@link AnswerBlocks} as {@code thinking}, {@code text} and {@code tool_use} blocks, with
 * its {@code stop_reason} (end_turn, max_tokens, stop_sequence or tool_use) and usage; streamed,
 * Anthropic's events, each an {@code event:} line and its JSON: message_start, for each block
 * content_block_start, its deltas (text_delta, thinking_delta, input_json_delta) and
 * content_block_stop, then message_delta (the stop reason, the output tokens) and message_stop.
 */
final class MessagesAnswer implements AnswerFormat {

    private final String id = "msg_" + UUID.randomUUID().toString().replace("-", "");
    private final String model;
    private final ResponseShape shape;
    private final ChoiceState choice;
    private final AnswerBlocks streamed;
    private SseWriter sse;

    /** @param shape how the chat API would answer the request's one choice */
    MessagesAnswer(String model, ResponseShape shape, ChoiceState choice) {
        this.model = model;
        this.shape = shape;
        this.choice = choice;
        this.streamed = new AnswerBlocks(shape, choice, listener);
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public String operation() {
        return "chat";
    }

    @Override
    public String promptParam() {
        return "messages";
    }

    @Override
    public ObjectNode whole() {
        List<AnswerBlocks.Block> blocks = AnswerBlocks.whole(shape, choice);
        ObjectNode message = message(blocks);
        ResponseEnvelope.addExtras(message, List.of(choice));
        return message;
    }

    @Override
    public void open(SseWriter writer) throws IOException {
        this.sse = writer;
        send("message_start", Json.object().set("message", message(null)));
        streamed.opening();
    }

    @Override
    public void prompt(SseWriter writer, ChoiceState state) {
    }

    @Override
    public void token(SseWriter writer, ChoiceState state, String text, PositionLogprobs logprobs) throws IOException {
        streamed.token(text);
    }

    @Override
    public void finished(SseWriter writer, ChoiceState state, String text, boolean allEnded) throws IOException {
        streamed.last(text, false);
    }

    @Override
    public void failed(SseWriter writer, ApiException error) throws IOException {
        writer.event("error", ErrorResponses.anthropicBody(error));
        writer.end();
    }

    @Override
    public void close(SseWriter writer) throws IOException {
        ObjectNode delta = Json.object();
        stopReason(delta, streamed.blocks());
        ObjectNode event = Json.object().set("delta", delta);
        event.putObject("usage").put("output_tokens", choice.finished().usage().completionTokens());
        send("message_delta", event);
        send("message_stop", Json.object());
        writer.end();
    }


    /** The events of the streamed blocks. */
    private final AnswerBlocks.Listener listener = new AnswerBlocks.Listener() {
        @Override
        public void opened(int index, AnswerBlocks.Block block) throws IOException {
            send("content_block_start", Json.object().put("index", index).set("content_block", block(block, false)));
        }

        @Override
        public void grew(int index, AnswerBlocks.Block block, String piece) throws IOException {
            ObjectNode delta = switch (block.kind) {
                case TEXT -> Json.object().put("type", "text_delta").put("text", piece);
                case REASONING -> Json.object().put("type", "thinking_delta").put("thinking", piece);
                case CALL -> Json.object().put("type", "input_json_delta").put("partial_json", piece);
            };
            send("content_block_delta", Json.object().put("index", index).set("delta", delta));
        }

        @Override
        public void closed(int index, AnswerBlocks.Block block) throws IOException {
            send("content_block_stop", Json.object().put("index", index));
        }
    };

    /** The message: in progress (no content, no stop reason) while {@code blocks} is null, else whole. */
    private ObjectNode message(List<AnswerBlocks.Block> blocks) {
        ObjectNode message = Json.object().put("id", id).put("type", "message").put("role", "assistant")
                .put("model", model);
        ArrayNode content = message.putArray("content");
        if (blocks == null) {
            message.putNull("stop_reason");
            message.putNull("stop_sequence");
        } else {
            blocks.forEach(block -> content.add(block(block, true)));
            stopReason(message, blocks);
        }
        Finished finished = blocks == null ? null : choice.finished();
        ObjectNode usage = message.putObject("usage");
        usage.put("input_tokens", finished == null ? choice.promptTokens().length : finished.usage().promptTokens());
        usage.put("output_tokens", finished == null ? 0 : finished.usage().completionTokens());
        usage.put("cache_read_input_tokens", finished == null ? 0 : finished.usage().cachedPromptTokens());
        usage.put("cache_creation_input_tokens", 0);
        return message;
    }

    /**
     * Puts the answer's stop_reason and stop_sequence: max_tokens when the limit cut it, tool_use when it
     * called, stop_sequence (the string) when a stop string ended it, else end_turn.
     */
    private void stopReason(ObjectNode node, List<AnswerBlocks.Block> blocks) {
        Finished finished = choice.finished();
        boolean called = blocks.stream().anyMatch(block -> block.kind == AnswerBlocks.Kind.CALL);
        String reason = finished.reason() == FinishReason.LENGTH ? "max_tokens" : called ? "tool_use"
                : finished.stopString() != null ? "stop_sequence" : "end_turn";
        node.put("stop_reason", reason);
        node.put("stop_sequence", reason.equals("stop_sequence") ? finished.stopString() : null);
    }

    /** A content block, whole or as it starts (empty; a call's input {}). */
    private static ObjectNode block(AnswerBlocks.Block block, boolean whole) {
        String text = whole ? block.text() : "";
        return switch (block.kind) {
            case TEXT -> Json.object().put("type", "text").put("text", text);
            case REASONING -> Json.object().put("type", "thinking").put("thinking", text).put("signature", "");
            case CALL -> {
                ObjectNode use = Json.object().put("type", "tool_use").put("id", block.callId).put("name", block.name);
                use.set("input", whole ? input(block.text()) : Json.object());
                yield use;
            }
        };
    }

    /** A call's arguments as the tool_use input: the JSON object they spell ({} where a cut left them unfinished). */
    private static JsonNode input(String arguments) {
        try {
            JsonNode parsed = Json.MAPPER.readTree(arguments);
            return parsed != null && parsed.isObject() ? parsed : Json.object();
        } catch (IOException unfinished) {
            return Json.object();
        }
    }

    /** One event: its name is its {@code type}. */
    private void send(String type, ObjectNode event) throws IOException {
        ObjectNode typed = Json.object().put("type", type);
        typed.setAll(event);
        sse.event(type, typed);
    }
}
