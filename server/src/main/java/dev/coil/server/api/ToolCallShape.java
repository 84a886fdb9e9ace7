package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Chat choices whose answer is a call ({@link ToolCalls#calls}): {@code message.tool_calls} instead of
 * {@code content}, as OpenAI's API answers them.
 * <ul>
 * <li>A named function: one call whose {@code arguments} are the answer's text. Streamed, the first
 *     chunk names the function and each token's text follows as {@code arguments}.</li>
 * <li>{@code "required"}: the answer's JSON array of {@code {"name", "parameters"}} read into one call
 *     each by a {@link CallScanner}, as it streams: a call's index, id and name once its parameters
 *     begin, then its arguments as they are written, as under {@code "auto"}. An answer cut short
 *     keeps the calls begun (the last with the arguments written so far), finish reason length; one
 *     cut before any call begins comes back as {@code content}.</li>
 * </ul>
 * The finish reason is the generation's ({@code stop}), as vLLM and OpenAI answer a forced call.
 */
final class ToolCallShape extends ChatAnswerShape {

    private static final SecureRandom RANDOM = new SecureRandom();

    private final ToolCalls tools;
    /** Per choice, the id of its named call, the same in every chunk. */
    private final Map<Integer, String> callIds = new ConcurrentHashMap<>();
    /** Per choice, the reading of its "required" answer as it streams. */
    private final Map<Integer, StreamedCalls> streams = new ConcurrentHashMap<>();

    /** A "required" answer's scanner, and how many of its calls the stream has begun. */
    private static final class StreamedCalls {
        final CallScanner scanner = new CallScanner(true);
        int begun;

        /** The chunk's delta for the answer's next text: its calls' pieces, or nothing. */
        ObjectNode delta(String text) {
            ObjectNode delta = Json.object();
            List<CallScanner.Event> events = scanner.feed(text);
            if (!events.isEmpty()) {
                begun = streamCalls(delta.putArray("tool_calls"), events, begun);
            }
            return delta;
        }
    }

    ToolCallShape(ChatShape chat, ToolCalls tools) {
        super(chat);
        this.tools = tools;
    }

    @Override
    public ObjectNode choice(ChoiceState state) {
        ObjectNode choice = chat.choice(state);
        ArrayNode calls = calls(state);
        if (calls != null) {
            ObjectNode message = (ObjectNode) choice.get("message");
            message.putNull("content");
            message.set("tool_calls", calls);
        }
        return choice;
    }

    @Override
    public ObjectNode opening(ChoiceState state) {
        ObjectNode choice = chat.opening(state);
        ObjectNode delta = (ObjectNode) choice.get("delta");
        delta.putNull("content");
        if (tools.forced() != null) {
            ArrayNode calls = delta.putArray("tool_calls");
            calls.add(call(0, callId(state), tools.forced(), ""));
        }
        return choice;
    }

    @Override
    public ObjectNode delta(ChoiceState state, String text, PositionLogprobs position) {
        if (tools.forced() == null) {
            ObjectNode delta = stream(state).delta(text);
            return delta.isEmpty() && position == null ? null : chat.chunk(state, delta, position);
        }
        return text.isEmpty() && position == null ? null : chat.chunk(state, argumentsDelta(text), position);
    }

    @Override
    public ObjectNode last(ChoiceState state, String text) {
        ObjectNode choice = chat.last(state, "");
        ObjectNode delta;
        if (tools.forced() != null) {
            delta = argumentsDelta(text);
        } else {
            StreamedCalls stream = stream(state);
            delta = stream.delta(text);
            if (stream.begun == 0) {
                delta.put("content", state.text());
            }
        }
        choice.set("delta", delta);
        return choice;
    }

    /** The choice's calls, or null when a "required" answer begins none. */
    private ArrayNode calls(ChoiceState state) {
        ArrayNode calls = Json.MAPPER.createArrayNode();
        if (tools.forced() != null) {
            calls.add(call(null, callId(state), tools.forced(), state.text()));
            return calls;
        }
        for (ToolCallReader.Call made : CallScanner.calls(new CallScanner(true).feed(state.text()))) {
            calls.add(call(null, newCallId(), made.name(), made.arguments()));
        }
        return calls.isEmpty() ? null : calls;
    }

    private StreamedCalls stream(ChoiceState state) {
        return streams.computeIfAbsent(state.index(), index -> new StreamedCalls());
    }

    /** A named call's delta: the arguments' next text (none when empty). */
    private static ObjectNode argumentsDelta(String text) {
        ObjectNode delta = Json.object();
        if (!text.isEmpty()) {
            delta.putArray("tool_calls").addObject().put("index", 0).putObject("function").put("arguments", text);
        }
        return delta;
    }

    /**
     * Calls' pieces as a chunk carries them, into {@code array}: a call's start as the whole call
     * ({@code index}, {@code id}, {@code type}, its name and the arguments after it in this chunk),
     * arguments of a call begun in an earlier chunk as {@code {"index", "function": {"arguments"}}}.
     * {@code begun}: the choice's calls begun before this chunk; returns the count after it.
     */
    static int streamCalls(ArrayNode array, List<CallScanner.Event> events, int begun) {
        ObjectNode function = null;
        for (CallScanner.Event event : events) {
            switch (event) {
                case CallScanner.Start start -> {
                    ObjectNode call = call(begun++, newCallId(), start.name(), "");
                    array.add(call);
                    function = (ObjectNode) call.get("function");
                }
                case CallScanner.Arguments arguments -> {
                    if (function == null) {
                        function = array.addObject().put("index", begun - 1).putObject("function").put("arguments", "");
                    }
                    function.put("arguments", function.get("arguments").asText() + arguments.text());
                }
            }
        }
        return begun;
    }

    /** One call as OpenAI spells it; {@code index} (a stream's) left out when null. */
    static ObjectNode call(Integer index, String id, String name, String arguments) {
        ObjectNode call = Json.object();
        if (index != null) {
            call.put("index", index);
        }
        call.put("id", id);
        call.put("type", "function");
        call.putObject("function").put("name", name).put("arguments", arguments);
        return call;
    }

    private String callId(ChoiceState state) {
        return callIds.computeIfAbsent(state.index(), index -> newCallId());
    }

    /** vLLM's form: chatcmpl-tool- and 32 hex digits. */
    static String newCallId() {
        byte[] bytes = new byte[16];
        RANDOM.nextBytes(bytes);
        return "chatcmpl-tool-" + HexFormat.of().formatHex(bytes);
    }
}
