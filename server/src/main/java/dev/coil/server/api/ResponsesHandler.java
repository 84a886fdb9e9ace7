package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

/**
 * POST /v1/responses: OpenAI's Responses API, as vLLM serves it. The request is read as the chat
 * request it stands for ({@link ResponsesRequest}, then {@link ChatHandler#prepare}); the answer is
 * chat's, read into output items ({@link ResponsesAnswer}), and stored ({@link ResponseStore}) unless
 * {@code store} is false or the server stores none; a response in a {@code conversation} adds its
 * input and output items to it once it completes, and holds it meanwhile (one response at a time,
 * {@link ConversationStore#lock}). With {@code background: true} (and store), the
 * answer is the queued response at once; the request runs on, its states stored as they come
 * ({@link GenerationRunner#runInBackground}), for GET /v1/responses/{id} to poll and
 * POST /v1/responses/{id}/cancel to end; with {@code stream} too, the answer is its events, which
 * GET /v1/responses/{id}?stream=true&amp;starting_after=N reads again, from the start or after event N.
 * POST /v1/responses/input_tokens counts the prompt a request would be answered from.
 */
public final class ResponsesHandler implements Handler, BodyHandler {

    private final ServerState state;
    private final GenerationRunner runner;
    private final long maxBodyBytes;
    private final ToolCallFormat toolCallParser;
    private final ReasoningFormat reasoningParser;
    private final ResponseStore store;
    private final ConversationStore conversations;
    private final BackgroundResponses running;

    /**
     * The parsers as {@link ChatHandler} takes them: tool_choice "auto"'s call format, the reasoning's;
     * {@code store} keeps answered responses, {@code conversations} the conversations they continue,
     * {@code running} the background ones still running.
     */
    public ResponsesHandler(ServerState state, GenerationRunner runner, long maxBodyBytes, ToolCallFormat toolCallParser,
            ReasoningFormat reasoningParser, ResponseStore store, ConversationStore conversations,
            BackgroundResponses running) {
        this.state = state;
        this.runner = runner;
        this.maxBodyBytes = maxBodyBytes;
        this.toolCallParser = toolCallParser;
        this.reasoningParser = reasoningParser;
        this.store = store;
        this.conversations = conversations;
        this.running = running;
    }

    @Override
    public void handle(Context ctx) throws Exception {
        state.ready();
        answer(ctx, JsonBody.read(ctx, maxBodyBytes));
    }

    @Override
    public void answer(Context ctx, ObjectNode body) throws Exception {
        ServedModel model = state.ready();
        Fields fields = new Fields(body);
        String continued = ResponsesRequest.conversationId(fields);
        // Locked before its items are read: no response can end meanwhile and add a turn this one would miss.
        Runnable unlock = continued == null ? () -> { } : conversations.lock(continued);
        boolean runsOn = false;
        try {
            runsOn = respond(ctx, model, fields, unlock);
        } finally {
            if (!runsOn) {
                unlock.run(); // answered or refused; a response that completed has unlocked it already
            }
        }
    }

    /**
     * Answers the request; true when it runs on in the background, whose last state unlocks its
     * conversation ({@link #continuing}).
     */
    private boolean respond(Context ctx, ServedModel model, Fields fields, Runnable unlock) throws Exception {
        ResponsesRequest request = ResponsesRequest.read(fields, model, store, conversations);
        ChatHandler.Prepared prepared;
        try {
            prepared = ChatHandler.prepare(new Fields(request.chat()), model, toolCallParser, reasoningParser);
        } catch (ApiException e) {
            throw renamed(e);
        }
        boolean storing = fields.bool("store", true) && store.enabled();
        boolean background = fields.bool("background", false);
        if (background && !storing) {
            throw ApiException.invalid("background", "background responses need store: true"
                    + (store.enabled() ? "" : ", and this server stores none (--response-store 0)"));
        }
        ObjectNode echo = echo(fields, request.format(), prepared).put("store", storing)
                .put("previous_response_id", request.previousId()).put("background", background)
                .put("truncation", request.truncating() ? "auto" : "disabled");
        String conversationId = request.conversationId();
        echo.set("conversation", conversationId == null ? null : Json.object().put("id", conversationId));
        ArrayNode conversation = request.conversation();
        Consumer<ObjectNode> saving = storing
                ? response -> store.save(response, conversation, request.inputFrom(), conversation.size()) : null;
        ResponsesAnswer answer = new ResponsesAnswer(model.name(), echo, prepared.shape(),
                prepared.choices().getFirst(), request.logprobs() ? TokenSpelling.of(fields, model) : null,
                conversationId == null ? saving : continuing(conversationId, request.input(), saving, unlock));
        if (background) {
            runner.runInBackground(ctx, model, answer, prepared.settings(), prepared.choices(), prepared.requests(),
                    running);
            return true;
        }
        runner.run(ctx, model, answer, prepared.settings(), prepared.choices(), prepared.requests());
        return false;
    }

    /**
     * POST /v1/responses/input_tokens (OpenAI's input token count): the tokens of the prompt that the
     * same fields would give a response, {@code {"object": "response.input_tokens", "input_tokens"}}.
     */
    public void inputTokens(Context ctx) {
        ServedModel model = state.ready();
        ResponsesRequest request = ResponsesRequest.read(new Fields(JsonBody.read(ctx, maxBodyBytes)), model, store,
                conversations);
        int tokens;
        try {
            tokens = ChatPrompt.tokens(new Fields(request.chat()), model, false).length;
        } catch (ApiException e) {
            throw renamed(e);
        }
        Json.respond(ctx, 200, Json.object().put("object", "response.input_tokens").put("input_tokens", tokens));
    }

    /**
     * What a response in a conversation does with each of its states, besides {@code saving} it (which
     * may be null): once it completed or was cut at max_output_tokens, its input items, then its output
     * items, join the conversation, once; a cancelled or failed one adds nothing; at any of those ends
     * the conversation is unlocked.
     */
    private Consumer<ObjectNode> continuing(String conversationId, ArrayNode input, Consumer<ObjectNode> saving,
            Runnable unlock) {
        AtomicBoolean appended = new AtomicBoolean();
        return response -> {
            // Appended and unlocked before the response is stored or sent: whoever sees it finished may
            // continue the conversation at once and finds its items there.
            String status = response.get("status").textValue();
            if ((status.equals("completed") || status.equals("incomplete")) && appended.compareAndSet(false, true)) {
                ArrayNode items = input.deepCopy();
                items.addAll((ArrayNode) response.get("output"));
                conversations.append(conversationId, items);
            }
            if (!status.equals("queued") && !status.equals("in_progress")) {
                unlock.run();
            }
            if (saving != null) {
                saving.accept(response);
            }
        };
    }

    /** The request's settings a response repeats, as OpenAI's responses carry them. */
    private static ObjectNode echo(Fields fields, JsonNode format, ChatHandler.Prepared prepared) {
        ObjectNode echo = Json.object();
        echo.set("instructions", fields.get("instructions"));
        echo.set("max_output_tokens", fields.get("max_output_tokens"));
        echo.set("metadata", fields.has("metadata") ? fields.get("metadata") : Json.object());
        echo.put("temperature", prepared.settings().sampling().temperature());
        echo.put("top_p", prepared.settings().sampling().topP());
        echo.set("text", Json.object().set("format", format == null ? Json.object().put("type", "text") : format));
        echo.set("reasoning", fields.get("reasoning"));
        echo.set("user", fields.get("user"));
        echo.set("tools", fields.has("tools") ? fields.get("tools") : Json.object().arrayNode());
        echo.set("tool_choice", fields.has("tool_choice") ? fields.get("tool_choice") : Json.MAPPER.valueToTree("auto"));
        echo.put("parallel_tool_calls", fields.bool("parallel_tool_calls", true));
        return echo;
    }

    /** A chat field's error, named as the Responses API names the field. */
    private static ApiException renamed(ApiException e) {
        String param = e.param() == null ? null : switch (e.param()) {
            case "messages" -> "input";
            case "max_tokens" -> "max_output_tokens";
            case "response_format" -> "text";
            default -> e.param();
        };
        String message = e.getMessage().replace("response_format", "text.format").replace("max_tokens",
                "max_output_tokens");
        return new ApiException(e.status(), e.type(), param, e.code(), message);
    }
}
