package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import java.io.IOException;
import java.util.List;

/**
 * The completions and chat APIs' answers: a response of choices whole, or a stream of chunks of one
 * choice each (its {@link ResponseShape} says how a choice looks), the usage chunk when asked for,
 * then [DONE]; an error after the stream opened is an {@code {"error": ...}} event.
 * <p>
 * With vLLM's {@code return_token_ids}, each choice carries its generated {@code token_ids} (whole,
 * all of them; streamed, those since its last chunk, so that a stream's join to the whole's) and the
 * prompt's ids come once: chat's {@code prompt_token_ids} on the response (streamed, on the first
 * chunk), a completion's on each choice (streamed, on its first chunk), since its prompts may differ.
 */
final class ChoiceChunks implements AnswerFormat {

    private final ResponseShape shape;
    private final ResponseEnvelope envelope;
    private final List<ChoiceState> choices;
    private final boolean includeUsage;
    private final boolean tokenIds;
    /** Per choice, its token ids sent so far (-1: no chunk of it yet). */
    private final int[] idsSent;
    private boolean promptIdsSent;

    ChoiceChunks(ResponseShape shape, ResponseEnvelope envelope, List<ChoiceState> choices, boolean includeUsage,
            boolean tokenIds) {
        this.shape = shape;
        this.envelope = envelope;
        this.choices = choices;
        this.includeUsage = includeUsage;
        this.tokenIds = tokenIds;
        this.idsSent = new int[choices.size()];
        java.util.Arrays.fill(idsSent, -1);
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
        ObjectNode response = envelope.response();
        if (tokenIds) {
            for (int i = 0; i < choices.size(); i++) {
                ChoiceState choice = choices.get(i);
                ObjectNode node = (ObjectNode) response.get("choices").get(i);
                node.set("token_ids", Json.array(choice.tokenIds(), 0));
                if (!chat()) {
                    node.set("prompt_token_ids", Json.array(choice.promptTokens()));
                }
            }
            if (chat()) {
                response.set("prompt_token_ids", Json.array(choices.getFirst().promptTokens()));
            }
        }
        return response;
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
        ObjectNode chunk = withIds(envelope.chunk(shape.last(choice, text), choice), choice);
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
            sse.data(withIds(envelope.chunk(choiceNode, choice), choice));
        }
    }

    /** With return_token_ids, {@code chunk} with the ids its choice has not sent yet, and the prompt's when due. */
    private ObjectNode withIds(ObjectNode chunk, ChoiceState choice) {
        if (!tokenIds) {
            return chunk;
        }
        int at = choices.indexOf(choice);
        ObjectNode node = (ObjectNode) chunk.get("choices").get(0);
        List<Integer> ids = choice.tokenIds();
        boolean first = idsSent[at] < 0;
        node.set("token_ids", Json.array(ids, Math.max(0, idsSent[at])));
        idsSent[at] = ids.size();
        if (chat() && !promptIdsSent) {
            chunk.set("prompt_token_ids", Json.array(choice.promptTokens()));
            promptIdsSent = true;
        } else if (!chat() && first) {
            node.set("prompt_token_ids", Json.array(choice.promptTokens()));
        }
        return chunk;
    }

    private boolean chat() {
        return shape.responseObject().equals("chat.completion");
    }
}
