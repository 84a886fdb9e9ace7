package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import dev.coil.engine.runner.FinishReason;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Chat choices whose free answer is read for what the model set apart in its own formats: its
 * reasoning ({@link ReasoningFormat}, the server's {@code --reasoning-parser}) comes back as
 * {@code reasoning} (and vLLM's older {@code reasoning_content}), and under {@code tool_choice: "auto"}
 * the calls it wrote ({@link ToolCallFormat}, {@code --tool-call-parser}) as OpenAI's
 * {@code tool_calls}; the rest is {@code content}. The reasoning is split off first, and only the
 * answer after it is read for calls.
 * <p>
 * Streamed, reasoning and text are passed on as they come; a call comes as vLLM streams it: its
 * {@code index} among the choice's calls, {@code id}, {@code type} and {@code function.name} once its
 * arguments begin (with the arguments read so far), then further pieces of {@code function.arguments}
 * under the same index as the model writes them. A choice that made a call
 * and ended on its own (an end-of-sequence token or a stop) has finish reason {@code tool_calls}, as
 * OpenAI's and vLLM's; one cut by its token limit keeps {@code length}.
 */
final class ReadChatShape extends ChatAnswerShape {

    private final ReasoningFormat reasoning;
    private final boolean reasoningOpened;
    private final ToolCallFormat calls;
    /** Each tool's {@code parameters.properties} by its name, for a format whose values they type. */
    private final Map<String, JsonNode> properties;
    /** Per choice, the readers of its stream. */
    private final Map<Integer, Readers> readers = new ConcurrentHashMap<>();

    /**
     * @param reasoning       the reasoning's format, or null: no reasoning is split off
     * @param reasoningOpened whether the prompt left a reasoning block open
     * @param calls           the calls' format, or null: no calls are read
     */
    ReadChatShape(ChatShape chat, ReasoningFormat reasoning, boolean reasoningOpened, ToolCallFormat calls) {
        this(chat, reasoning, reasoningOpened, calls, Map.of());
    }

    /** @param properties each tool's {@code parameters.properties} by its name (what types tagged values) */
    ReadChatShape(ChatShape chat, ReasoningFormat reasoning, boolean reasoningOpened, ToolCallFormat calls,
            Map<String, JsonNode> properties) {
        super(chat);
        this.properties = properties;
        this.reasoning = reasoning;
        this.reasoningOpened = reasoningOpened;
        this.calls = calls;
    }

    /** One choice's readers, and how many calls it has sent. */
    private final class Readers {
        final ReasoningReader reasoningReader = reasoning == null ? null
                : new ReasoningReader(reasoning, reasoningOpened,
                        calls != null && calls.tagged() ? calls.startTag() : null);
        final ToolCallReader callReader = calls == null ? null : new ToolCallReader(calls, properties);
        int callsSent;

        /** What a piece of output (or, with {@code last}, its end) gives back, as one chunk's parts. */
        Parts read(String text, boolean last) {
            Parts parts = new Parts();
            answer(parts, split(text, parts));
            if (last) {
                if (reasoningReader != null) {
                    ReasoningReader.Split rest = reasoningReader.finish();
                    parts.reasoning.append(rest.reasoning());
                    answer(parts, rest.answer());
                }
                if (callReader != null) {
                    parts.add(callReader.finish());
                }
            }
            return parts;
        }

        private String split(String text, Parts parts) {
            if (reasoningReader == null) {
                return text;
            }
            ReasoningReader.Split split = reasoningReader.feed(text);
            parts.reasoning.append(split.reasoning());
            return split.answer();
        }

        private void answer(Parts parts, String text) {
            if (callReader == null) {
                parts.content.append(text);
            } else {
                parts.add(callReader.feed(text));
            }
        }

        boolean reasoned() {
            return reasoningReader != null && reasoningReader.reasoned();
        }

        boolean called() {
            return callReader != null && callReader.calls() > 0;
        }
    }

    /** What one chunk (or the whole answer) carries. */
    private static final class Parts {
        final StringBuilder reasoning = new StringBuilder();
        final StringBuilder content = new StringBuilder();
        /** The calls' pieces: starts and arguments, in order. */
        final List<CallScanner.Event> calls = new ArrayList<>();

        void add(List<ToolCallReader.Piece> read) {
            for (ToolCallReader.Piece piece : read) {
                switch (piece) {
                    case ToolCallReader.Text text -> content.append(text.text());
                    case CallScanner.Event event -> calls.add(event);
                }
            }
        }
    }

    @Override
    public ObjectNode choice(ChoiceState state) {
        ObjectNode choice = chat.choice(state);
        Readers whole = new Readers();
        Parts parts = whole.read(state.text(), true);
        ObjectNode message = (ObjectNode) choice.get("message");
        // Content that reasoning or calls left empty is no content (ToolCallReader.gather's rule).
        String content = parts.content.toString();
        message.put("content", content.isEmpty() && (whole.reasoned() || whole.called()) ? null : content);
        if (whole.reasoned()) {
            message.put("reasoning", parts.reasoning.toString());
            message.put("reasoning_content", parts.reasoning.toString());
        }
        List<ToolCallReader.Call> calls = CallScanner.calls(parts.calls);
        if (!calls.isEmpty()) {
            ArrayNode array = message.putArray("tool_calls");
            for (ToolCallReader.Call call : calls) {
                array.add(ToolCallShape.call(null, ToolCallShape.newCallId(), call.name(), call.arguments()));
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
        Readers choiceReaders = readers(state);
        ObjectNode delta = delta(choiceReaders, choiceReaders.read(text, false));
        return delta.isEmpty() && position == null ? null : chat.chunk(state, delta, position);
    }

    @Override
    public ObjectNode last(ChoiceState state, String text) {
        Readers choiceReaders = readers(state);
        ObjectNode choice = chat.last(state, "");
        choice.set("delta", delta(choiceReaders, choiceReaders.read(text, true)));
        if (choiceReaders.called()) {
            finishWithCalls(choice, state);
        }
        return choice;
    }

    /** A chunk's delta: the parts' reasoning, content and calls, each left out when there is none. */
    private static ObjectNode delta(Readers choiceReaders, Parts parts) {
        ObjectNode delta = Json.object();
        if (!parts.reasoning.isEmpty()) {
            delta.put("reasoning", parts.reasoning.toString());
            delta.put("reasoning_content", parts.reasoning.toString());
        }
        if (!parts.content.isEmpty()) {
            delta.put("content", parts.content.toString());
        }
        if (!parts.calls.isEmpty()) {
            choiceReaders.callsSent = ToolCallShape.streamCalls(delta.putArray("tool_calls"), parts.calls,
                    choiceReaders.callsSent);
        }
        return delta;
    }

    private Readers readers(ChoiceState state) {
        return readers.computeIfAbsent(state.index(), index -> new Readers());
    }

    /** A choice that called and ended on its own finishes with {@code tool_calls}. */
    private static void finishWithCalls(ObjectNode choice, ChoiceState state) {
        if (state.finished().reason() == FinishReason.STOP) {
            choice.put("finish_reason", "tool_calls");
        }
    }
}
