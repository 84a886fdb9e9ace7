package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import java.util.List;

/**
 * /v1/chat/completions choices: {@code {index, message: {role, content}, logprobs, finish_reason}}
 * whole, {@code {index, delta, logprobs, finish_reason}} streamed.
 */
final class ChatShape implements ResponseShape {

    private final TokenSpelling spelling;
    private final boolean logprobs;
    private final int promptLogprobs;

    /** @param promptLogprobs vLLM's prompt_logprobs (the first choice's, on the response), or -1 */
    ChatShape(TokenSpelling spelling, boolean logprobs, int promptLogprobs) {
        this.spelling = spelling;
        this.logprobs = logprobs;
        this.promptLogprobs = promptLogprobs;
    }

    @Override
    public void addToResponse(ObjectNode response, List<ChoiceState> choices) {
        if (promptLogprobs >= 0 && choices.getFirst().promptLogprobs() != null) {
            response.set("prompt_logprobs", LogprobsJson.promptLogprobs(spelling.model(),
                    choices.getFirst().promptLogprobs(), promptLogprobs));
        }
    }

    @Override
    public String idPrefix() {
        return "chatcmpl-";
    }

    @Override
    public String responseObject() {
        return "chat.completion";
    }

    @Override
    public String chunkObject() {
        return "chat.completion.chunk";
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
    public ObjectNode choice(ChoiceState state) {
        ObjectNode choice = Json.object();
        choice.put("index", state.index());
        ObjectNode message = choice.putObject("message");
        message.put("role", "assistant");
        message.put("content", state.text());
        choice.set("logprobs", logprobs ? LogprobsJson.chat(spelling, state.logprobs()) : null);
        return ResponseShape.finish(choice, state.finished());
    }

    @Override
    public ObjectNode opening(ChoiceState state) {
        ObjectNode choice = Json.object();
        choice.put("index", state.index());
        ObjectNode delta = choice.putObject("delta");
        delta.put("role", "assistant");
        delta.put("content", "");
        choice.putNull("logprobs");
        choice.putNull("finish_reason");
        return choice;
    }

    @Override
    public ObjectNode prompt(ChoiceState state) {
        return null;
    }

    @Override
    public ObjectNode delta(ChoiceState state, String text, PositionLogprobs position) {
        if (text.isEmpty() && position == null) {
            return null;
        }
        return chunk(state, Json.object().put("content", text), position);
    }

    /** A chunk of the stream that is not its last: {@code delta} and the token's logprobs (or null). */
    ObjectNode chunk(ChoiceState state, ObjectNode delta, PositionLogprobs position) {
        ObjectNode choice = Json.object();
        choice.put("index", state.index());
        choice.set("delta", delta);
        choice.set("logprobs", position != null ? LogprobsJson.chat(spelling, List.of(position)) : null);
        choice.putNull("finish_reason");
        return choice;
    }

    @Override
    public ObjectNode last(ChoiceState state, String text) {
        ObjectNode choice = Json.object();
        choice.put("index", state.index());
        ObjectNode delta = choice.putObject("delta");
        if (!text.isEmpty()) {
            delta.put("content", text);
        }
        choice.putNull("logprobs");
        return ResponseShape.finish(choice, state.finished());
    }
}
