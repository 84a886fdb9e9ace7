package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import java.io.IOException;
import java.util.List;

/**
 * The completions and chat APIs' answers: a response of choices whole, or a stream of chunks of one
 * choice each (its {@link ResponseShape} says how a choice looks), the usage chunk when asked for,
 * then [DONE]; an error after the stream opened is an {@code {"error": ...}} event.
 */
final class ChoiceChunks implements AnswerFormat {

    private final ResponseShape shape;
    private final ResponseEnvelope envelope;
    private final List<ChoiceState> choices;
    private final boolean includeUsage;

    ChoiceChunks(ResponseShape shape, ResponseEnvelope envelope, List<ChoiceState> choices, boolean includeUsage) {
        this.shape = shape;
        this.envelope = envelope;
        this.choices = choices;
        this.includeUsage = includeUsage;
    }

    @Override
    public String id() {
        return envelope.id();
    }

    @Override
    public String operation() {
        return shape.operation();
    }

    @Override
    public String promptParam() {
        return shape.promptParam();
    }

    @Override
    public ObjectNode whole() {
        return envelope.response();
    }

    @Override
    public void open(SseWriter sse) throws IOException {
        for (ChoiceState choice : choices) {
            send(sse, shape.opening(choice), choice);
        }
    }

    @Override
    public void prompt(SseWriter sse, ChoiceState choice) throws IOException {
        send(sse, shape.prompt(choice), choice);
    }

    @Override
    public void token(SseWriter sse, ChoiceState choice, String text, PositionLogprobs logprobs) throws IOException {
        send(sse, shape.delta(choice, text, logprobs), choice);
    }

    @Override
    public void finished(SseWriter sse, ChoiceState choice, String text, boolean allEnded) throws IOException {
        ObjectNode chunk = envelope.chunk(shape.last(choice, text), choice);
        if (allEnded && !includeUsage) {
            envelope.addExtras(chunk);
        }
        sse.data(chunk);
    }

    @Override
    public void failed(SseWriter sse, ApiException error) throws IOException {
        sse.data(ErrorResponses.body(error));
        sse.done();
    }

    @Override
    public void close(SseWriter sse) throws IOException {
        if (includeUsage) {
            ObjectNode usage = envelope.usageChunk();
            envelope.addExtras(usage);
            sse.data(usage);
        }
        sse.done();
    }

    private void send(SseWriter sse, ObjectNode choiceNode, ChoiceState choice) throws IOException {
        if (choiceNode != null) {
            sse.data(envelope.chunk(choiceNode, choice));
        }
    }
}
