package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import dev.coil.engine.runner.FinishReason;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Chat choices under {@code tool_choice: "auto"}: the model answers freely, and the calls it writes in
 * its own format ({@link ToolCallFormat}, the server's {@code --tool-call-parser}) come back as
 * OpenAI's {@code tool_calls}, the rest as {@code content} ({@link ToolCallReader} says which is which).
 * Streamed, text is passed on as it comes and each call comes whole in the chunk where its block
 * closes, with its {@code index} among the choice's calls. A choice that made a call and ended on its
 * own (an end-of-sequence token or a stop) has finish reason {@code tool_calls}, as OpenAI's and
 * vLLM's; one cut by its token limit keeps {@code length}.
 */
final class AutoToolCallShape extends ChatAnswerShape {

    private final ToolCallFormat format;
    /** Per choice, the reader of its stream. */
    private final Map<Integer, ToolCallReader> readers = new ConcurrentHashMap<>();
    /** Per choice, the calls streamed so far (the next call's index). */
    private final Map<Integer, Integer> callsSent = new ConcurrentHashMap<>();

    AutoToolCallShape(ChatShape chat, ToolCallFormat format) {
        super(chat);
        this.format = format;
    }

    @Override
    public ObjectNode choice(ChoiceState state) {
        ObjectNode choice = chat.choice(state);
        ToolCallReader.Reading reading = ToolCallReader.read(format, state.text());
        if (!reading.calls().isEmpty()) {
            ObjectNode message = (ObjectNode) choice.get("message");
            message.put("content", reading.content());
            ArrayNode calls = message.putArray("tool_calls");
            for (ToolCallReader.Call call : reading.calls()) {
                calls.add(ToolCallShape.call(null, ToolCallShape.newCallId(), call.name(), call.arguments()));
            }
            finishWithCalls(choice, state);
        }
        return choice;
    }

    @Override
    public ObjectNode opening(ChoiceState state) {
        return chat.opening(state);
    }

    @Override
    public ObjectNode delta(ChoiceState state, String text, PositionLogprobs position) {
        ObjectNode delta = delta(state, reader(state).feed(text));
        return delta.isEmpty() && position == null ? null : chat.chunk(state, delta, position);
    }

    @Override
    public ObjectNode last(ChoiceState state, String text) {
        ToolCallReader reader = reader(state);
        List<ToolCallReader.Piece> pieces = new ArrayList<>(reader.feed(text));
        pieces.addAll(reader.finish());
        ObjectNode choice = chat.last(state, "");
        choice.set("delta", delta(state, pieces));
        if (reader.calls() > 0) {
            finishWithCalls(choice, state);
        }
        return choice;
    }

    /** A chunk's delta: the pieces' text as {@code content} and their calls as {@code tool_calls}. */
    private ObjectNode delta(ChoiceState state, List<ToolCallReader.Piece> pieces) {
        ObjectNode delta = Json.object();
        StringBuilder content = new StringBuilder();
        ArrayNode calls = null;
        for (ToolCallReader.Piece piece : pieces) {
            switch (piece) {
                case ToolCallReader.Text text -> content.append(text.text());
                case ToolCallReader.Call call -> {
                    if (calls == null) {
                        calls = Json.MAPPER.createArrayNode();
                    }
                    int index = callsSent.merge(state.index(), 1, Integer::sum) - 1;
                    calls.add(ToolCallShape.call(index, ToolCallShape.newCallId(), call.name(), call.arguments()));
                }
            }
        }
        if (!content.isEmpty()) {
            delta.put("content", content.toString());
        }
        if (calls != null) {
            delta.set("tool_calls", calls);
        }
        return delta;
    }

    private ToolCallReader reader(ChoiceState state) {
        return readers.computeIfAbsent(state.index(), index -> new ToolCallReader(format));
    }

    /** A choice that called and ended on its own finishes with {@code tool_calls}. */
    private static void finishWithCalls(ObjectNode choice, ChoiceState state) {
        if (state.finished().reason() == FinishReason.STOP) {
            choice.put("finish_reason", "tool_calls");
        }
    }
}
