package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.Finished;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import java.util.List;

/**
 * What differs between /v1/completions and /v1/chat/completions once the engine runs: object
 * names, and how a choice looks whole or as a stream of chunks. Chunk methods return the choice
 * object of one chunk, or null when there is nothing to send.
 */
interface ResponseShape {

    /** "cmpl-" or "chatcmpl-". */
    String idPrefix();

    /** "text_completion" or "chat.completion". */
    String responseObject();

    /** "text_completion" or "chat.completion.chunk". */
    String chunkObject();

    /** gen_ai.operation.name: "text_completion" or "chat". */
    String operation();

    /** What the prompt is called in this API, for errors about it: "prompt" or "messages". */
    String promptParam();

    /** The whole choice of a non-streamed response. */
    ObjectNode choice(ChoiceState state);

    /** The chunk that opens a choice's stream (chat's role, completions' echo), or null. */
    ObjectNode opening(ChoiceState state);

    /** The chunk for the prompt's logprobs when they arrive (completions' echo with logprobs), or null. */
    ObjectNode prompt(ChoiceState state);

    /** The chunk for one token: its text (possibly empty) and logprobs (null when not asked for). */
    ObjectNode delta(ChoiceState state, String text, PositionLogprobs logprobs);

    /** The chunk that ends a choice: the text still held back and the finish reason. */
    ObjectNode last(ChoiceState state, String text);

    /** Adds what a whole response carries beside its choices and usage (chat's prompt_logprobs); none by default. */
    default void addToResponse(ObjectNode response, List<ChoiceState> choices) {
    }

    /**
     * Puts a choice's {@code finish_reason} and vLLM's {@code stop_reason}: the stop string that
     * matched, the stop token id (a number) that ended it, or null (an end-of-sequence token, a
     * length limit).
     */
    static ObjectNode finish(ObjectNode choice, Finished finished) {
        choice.put("finish_reason", finished.reason().apiName());
        if (finished.stopString() != null) {
            choice.put("stop_reason", finished.stopString());
        } else if (finished.stopTokenId() != null) {
            choice.put("stop_reason", finished.stopTokenId().intValue());
        } else {
            choice.putNull("stop_reason");
        }
        return choice;
    }
}
