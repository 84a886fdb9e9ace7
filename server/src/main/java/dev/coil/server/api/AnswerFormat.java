package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import java.io.IOException;

/**
 * How one request's answer is written: whole, or as Server-Sent Events while its choices run. The
 * completions and chat APIs write chunks of choices ({@link ChoiceChunks}); the Responses API writes
 * typed events around one output message ({@link ResponsesAnswer}). {@link GenerationRunner} and
 * {@link StreamingResponse} run the engine requests and call these in order: open, then per event
 * prompt, token or finished, then close (or failed, which ends the stream).
 */
interface AnswerFormat {

    /** The answer's id, also the telemetry's. */
    String id();

    /** gen_ai.operation.name: "text_completion", "chat" or "responses". */
    String operation();

    /** What the prompt is called in this API, for errors about it. */
    String promptParam();

    /** The body of a non-streamed answer, once every choice has ended. */
    ObjectNode whole();

    /** Before any engine event: what opens each choice's stream. */
    void open(SseWriter sse) throws IOException;

    /** A choice's prompt logprobs arrived. */
    void prompt(SseWriter sse, ChoiceState choice) throws IOException;

    /** A choice's token: the text it adds (possibly empty) and its logprobs (null when not asked for). */
    void token(SseWriter sse, ChoiceState choice, String text, PositionLogprobs logprobs) throws IOException;

    /** A choice ended, with the text it still held back; {@code allEnded}: it was the last one running. */
    void finished(SseWriter sse, ChoiceState choice, String text, boolean allEnded) throws IOException;

    /** The request failed after the stream opened: the error's event, and the stream's end. */
    void failed(SseWriter sse, ApiException error) throws IOException;

    /** Every choice ended: what follows the last one, and the stream's end. */
    void close(SseWriter sse) throws IOException;
}
