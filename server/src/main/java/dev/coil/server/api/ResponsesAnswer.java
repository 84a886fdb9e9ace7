package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.Finished;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import dev.coil.engine.runner.FinishReason;
import java.io.IOException;
import java.time.Instant;
import java.util.List;
import java.util.UUID;

/**
 * An answer of OpenAI's Responses API: a {@code response} object whose output is one assistant message
 * of one {@code output_text} part, whole; streamed, the typed events OpenAI sends (each an {@code event:}
 * line and its JSON, numbered by {@code sequence_number}): response.created and response.in_progress,
 * the message's output_item.added and content_part.added, an output_text.delta a token that adds text,
 * then output_text.done, content_part.done, output_item.done, and response.completed (or
 * response.incomplete when max_output_tokens cut it). The response echoes the request's settings
 * ({@code echo}: instructions, max_output_tokens, metadata, temperature, top_p, text) and carries
 * Coil's {@code timings} and {@code paths} as chat does.
 */
final class ResponsesAnswer implements AnswerFormat {

    private final String id = "resp_" + UUID.randomUUID().toString().replace("-", "");
    private final String messageId = "msg_" + UUID.randomUUID().toString().replace("-", "");
    private final long createdAt = Instant.now().getEpochSecond();
    private final String model;
    private final ObjectNode echo;
    private final ChoiceState choice;
    private int sequence;

    /** @param echo the request's settings the response repeats (OpenAI's fields), in order */
    ResponsesAnswer(String model, ObjectNode echo, ChoiceState choice) {
        this.model = model;
        this.echo = echo;
        this.choice = choice;
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
        return response();
    }

    @Override
    public void open(SseWriter sse) throws IOException {
        send(sse, "response.created", Json.object().set("response", response()));
        send(sse, "response.in_progress", Json.object().set("response", response()));
        send(sse, "response.output_item.added", Json.object().put("output_index", 0).set("item", message()));
        send(sse, "response.content_part.added", part().set("part", text("")));
    }

    @Override
    public void prompt(SseWriter sse, ChoiceState state) {
    }

    @Override
    public void token(SseWriter sse, ChoiceState state, String text, PositionLogprobs logprobs) throws IOException {
        if (!text.isEmpty()) {
            ObjectNode delta = part().put("delta", text);
            delta.putArray("logprobs");
            send(sse, "response.output_text.delta", delta);
        }
    }

    @Override
    public void finished(SseWriter sse, ChoiceState state, String text, boolean allEnded) throws IOException {
        token(sse, state, text, null);
        ObjectNode done = part().put("text", choice.text());
        done.putArray("logprobs");
        send(sse, "response.output_text.done", done);
        send(sse, "response.content_part.done", part().set("part", text(choice.text())));
        send(sse, "response.output_item.done", Json.object().put("output_index", 0).set("item", message()));
    }

    @Override
    public void failed(SseWriter sse, ApiException error) throws IOException {
        ObjectNode event = Json.object().put("type", "error").put("code", error.code()).put("message", error.getMessage());
        event.put("param", error.param());
        event.put("sequence_number", sequence++);
        sse.event("error", event);
        sse.end();
    }

    @Override
    public void close(SseWriter sse) throws IOException {
        ObjectNode whole = response();
        send(sse, whole.get("status").asText().equals("incomplete") ? "response.incomplete" : "response.completed",
                Json.object().set("response", whole));
        sse.end();
    }

    /** The response object as it stands: in progress until the choice ended, then completed or incomplete. */
    private ObjectNode response() {
        Finished finished = choice.finished();
        boolean cut = finished != null && finished.reason() == FinishReason.LENGTH;
        ObjectNode response = Json.object();
        response.put("id", id);
        response.put("object", "response");
        response.put("created_at", createdAt);
        response.put("status", finished == null ? "in_progress" : cut ? "incomplete" : "completed");
        response.putNull("error");
        if (cut) {
            response.putObject("incomplete_details").put("reason", "max_output_tokens");
        } else {
            response.putNull("incomplete_details");
        }
        response.put("model", model);
        var output = response.putArray("output");
        if (finished != null) {
            output.add(message());
        }
        response.put("parallel_tool_calls", true);
        response.put("tool_choice", "auto");
        response.putArray("tools");
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

    /** The assistant's message: in progress with no part yet while the choice runs, then its one text part. */
    private ObjectNode message() {
        boolean ended = choice.finished() != null;
        ObjectNode message = Json.object();
        message.put("id", messageId);
        message.put("type", "message");
        message.put("role", "assistant");
        message.put("status", ended ? (choice.finished().reason() == FinishReason.LENGTH ? "incomplete" : "completed")
                : "in_progress");
        var content = message.putArray("content");
        if (ended) {
            content.add(text(choice.text()));
        }
        return message;
    }

    private static ObjectNode text(String text) {
        ObjectNode part = Json.object().put("type", "output_text").put("text", text);
        part.putArray("annotations");
        part.putArray("logprobs");
        return part;
    }

    /** The fields of an event about the message's one text part. */
    private ObjectNode part() {
        return Json.object().put("item_id", messageId).put("output_index", 0).put("content_index", 0);
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
    private void send(SseWriter sse, String type, ObjectNode event) throws IOException {
        ObjectNode typed = Json.object().put("type", type);
        typed.setAll(event);
        typed.put("sequence_number", sequence++);
        sse.event(type, typed);
    }
}
