package dev.coil.server.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Chat choices whose answer is a call ({@link ToolCalls#calls}): {@code message.tool_calls} instead of
 * {@code content}, as OpenAI's API answers them.
 * <ul>
 * <li>A named function: one call whose {@code arguments} are the answer's text. Streamed, the first
 *     chunk names the function and each token's text follows as {@code arguments}.</li>
 * <li>{@code "required"}: the answer's JSON array of {@code {"name", "parameters"}} read into one call
 *     each. Streamed, the calls come whole in the last chunk (tokens before it carry only their logprobs).
 *     An answer cut short (no whole array) comes back as {@code content}, with finish reason length.</li>
 * </ul>
 * The finish reason is the generation's ({@code stop}), as vLLM and OpenAI answer a forced call.
 */
final class ToolCallShape extends ChatAnswerShape {

    private static final SecureRandom RANDOM = new SecureRandom();

    private final ToolCalls tools;
    /** Per choice, the id of its named call, the same in every chunk. */
    private final Map<Integer, String> callIds = new ConcurrentHashMap<>();

    ToolCallShape(ChatShape chat, ToolCalls tools) {
        super(chat);
        this.tools = tools;
    }

    @Override
    public ObjectNode choice(ChoiceState state) {
        ObjectNode choice = chat.choice(state);
        ArrayNode calls = calls(state, false);
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
            // The calls come whole at the end; a token's chunk carries its logprobs alone.
            return position == null ? null : chat.chunk(state, Json.object(), position);
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
            delta = Json.object();
            ArrayNode calls = calls(state, true);
            if (calls != null) {
                delta.set("tool_calls", calls);
            } else {
                delta.put("content", state.text());
            }
        }
        choice.set("delta", delta);
        return choice;
    }

    /**
     * The choice's calls, or null when a "required" answer is no whole array of calls. A stream's calls
     * carry their {@code index}.
     */
    private ArrayNode calls(ChoiceState state, boolean streamed) {
        ArrayNode calls = Json.MAPPER.createArrayNode();
        if (tools.forced() != null) {
            calls.add(call(streamed ? 0 : null, callId(state), tools.forced(), state.text()));
            return calls;
        }
        JsonNode answer;
        try {
            answer = Json.MAPPER.readTree(state.text());
        } catch (JsonProcessingException cutShort) {
            return null;
        }
        if (answer == null || !answer.isArray()) {
            return null;
        }
        for (JsonNode made : answer) {
            calls.add(call(streamed ? calls.size() : null, newCallId(), made.path("name").asText(),
                    made.path("parameters").toString()));
        }
        return calls;
    }

    /** A named call's delta: the arguments' next text (none when empty). */
    private static ObjectNode argumentsDelta(String text) {
        ObjectNode delta = Json.object();
        if (!text.isEmpty()) {
            delta.putArray("tool_calls").addObject().put("index", 0).putObject("function").put("arguments", text);
        }
        return delta;
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
