package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.Finished;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import dev.coil.engine.runner.FinishReason;
import java.io.IOException;
import java.time.Instant;
import java.util.List;
import java.util.UUID;

/**
 * An answer of OpenAI's Responses API, made from the chat answer its request stands for ({@code shape}
 * reads that answer as chat would: reasoning split off, calls found): whole, a {@code response}
 * object whose output holds the reasoning, the message and the calls ({@link ResponseOutputItems});
 * streamed, OpenAI's typed events, each an {@code event:} line and its JSON numbered by
 * {@code sequence_number}: response.created and response.in_progress, each output item's events, then
 * response.completed (or response.incomplete when max_output_tokens cut it). The response echoes the
 * request's settings ({@code echo}) and carries Coil's {@code timings} and {@code paths} as chat does.
 */
final class ResponsesAnswer implements AnswerFormat {

    private final String id = "resp_" + UUID.randomUUID().toString().replace("-", "");
    private final long createdAt = Instant.now().getEpochSecond();
    private final String model;
    private final ObjectNode echo;
    private final ResponseShape shape;
    private final ChoiceState choice;
    private final ResponseOutputItems streamed = new ResponseOutputItems();
    private final ResponseOutputItems.Events events;
    private SseWriter sse;
    private int sequence;

    /**
     * @param echo  the request's settings the response repeats (OpenAI's fields)
     * @param shape how the chat API would answer the request's one choice
     */
    ResponsesAnswer(String model, ObjectNode echo, ResponseShape shape, ChoiceState choice) {
        this.model = model;
        this.echo = echo;
        this.shape = shape;
        this.choice = choice;
        this.events = this::send;
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public String operation() {
        return "responses";
    }

    @Override
    public String promptParam() {
        return "input";
    }

    @Override
    public ObjectNode whole() {
        return response(ResponseOutputItems.of(shape.choice(choice).get("message"), cut()));
    }

    @Override
    public void open(SseWriter writer) throws IOException {
        this.sse = writer;
        send("response.created", Json.object().set("response", response(null)));
        send("response.in_progress", Json.object().set("response", response(null)));
        feed(shape.opening(choice));
    }

    @Override
    public void prompt(SseWriter writer, ChoiceState state) {
    }

    @Override
    public void token(SseWriter writer, ChoiceState state, String text, PositionLogprobs logprobs) throws IOException {
        feed(shape.delta(choice, text, null));
    }

    @Override
    public void finished(SseWriter writer, ChoiceState state, String text, boolean allEnded) throws IOException {
        feed(shape.last(choice, text));
        streamed.finish(cut(), events);
    }

    @Override
    public void failed(SseWriter writer, ApiException error) throws IOException {
        ObjectNode event = Json.object().put("type", "error").put("code", error.code()).put("message", error.getMessage());
        event.put("param", error.param());
        event.put("sequence_number", sequence++);
        writer.event("error", event);
        writer.end();
    }

    @Override
    public void close(SseWriter writer) throws IOException {
        ObjectNode whole = response(streamed.items());
        send(cut() ? "response.incomplete" : "response.completed", Json.object().set("response", whole));
        writer.end();
    }

    /** A chat chunk's delta into the streamed items (a chunk may be null: nothing to send). */
    private void feed(ObjectNode chunk) throws IOException {
        if (chunk != null && chunk.get("delta") != null) {
            streamed.feed(chunk.get("delta"), events);
        }
    }

    private boolean cut() {
        Finished finished = choice.finished();
        return finished != null && finished.reason() == FinishReason.LENGTH;
    }

    /** The response object: in progress (no output yet, {@code output} null) until the choice ended, then completed or incomplete. */
    private ObjectNode response(ArrayNode output) {
        Finished finished = output == null ? null : choice.finished();
        ObjectNode response = Json.object();
        response.put("id", id);
        response.put("object", "response");
        response.put("created_at", createdAt);
        response.put("status", finished == null ? "in_progress" : cut() ? "incomplete" : "completed");
        response.putNull("error");
        if (finished != null && cut()) {
            response.putObject("incomplete_details").put("reason", "max_output_tokens");
        } else {
            response.putNull("incomplete_details");
        }
        response.put("model", model);
        response.set("output", output == null ? Json.object().arrayNode() : output);
        response.put("store", false);
        response.putNull("previous_response_id");
        response.put("truncation", "disabled");
        response.setAll(echo);
        if (finished != null) {
            response.set("usage", usage(finished));
            ResponseEnvelope.addExtras(response, List.of(choice));
        } else {
            response.putNull("usage");
        }
        return response;
    }

    private static ObjectNode usage(Finished finished) {
        int input = finished.usage().promptTokens();
        int output = finished.usage().completionTokens();
        ObjectNode usage = Json.object();
        usage.put("input_tokens", input);
        usage.putObject("input_tokens_details").put("cached_tokens", finished.usage().cachedPromptTokens())
                .put("cache_write_tokens", 0);
        usage.put("output_tokens", output);
        usage.putObject("output_tokens_details").put("reasoning_tokens", 0);
        usage.put("total_tokens", input + output);
        return usage;
    }

    /** One typed event: its name is its {@code type}, numbered in the stream's order. */
    private void send(String type, ObjectNode event) throws IOException {
        ObjectNode typed = Json.object().put("type", type);
        typed.setAll(event);
        typed.put("sequence_number", sequence++);
        sse.event(type, typed);
    }
}
