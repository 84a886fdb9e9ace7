package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import io.javalin.http.Context;
import java.util.List;
import java.util.Set;

/**
 * POST /v1/messages (and /v1/messages/count_tokens): Anthropic's Messages API, as vLLM and llama.cpp's
 * server serve it. A request is read as the chat request it stands for ({@link ChatHandler#prepare}):
 * {@code system} (a string or text blocks) a system message first; {@code messages} of a string or
 * content blocks, text joined, an assistant's {@code tool_use} blocks as its tool_calls (the input
 * written as the arguments' JSON), a user's {@code tool_result} blocks as tool messages before the
 * rest of its text, {@code thinking} blocks left out as chat leaves a turn's reasoning out;
 * {@code max_tokens} (required, as Anthropic has it), {@code stop_sequences} as stop,
 * {@code temperature}, {@code top_p}, {@code top_k}, {@code stream}, custom {@code tools}
 * ({@code input_schema} as parameters) and {@code tool_choice} (auto, any as required, tool as a named
 * function, none; {@code disable_parallel_tool_use} as parallel_tool_calls false), and vLLM's
 * sampling extras as chat takes them. The answer is chat's, read into content blocks
 * ({@link MessagesAnswer}). Errors are Anthropic's objects ({@link ErrorResponses#write}).
 *
 * <p>A 400 names what is not served: images and documents, tools other than custom ones (Anthropic's
 * server tools), {@code mcp_servers} and {@code container}. {@code thinking}'s type goes to the chat
 * template as {@code enable_thinking} (enabled or adaptive: true; disabled: false), unless
 * {@code chat_template_kwargs} give it; its {@code budget_tokens} becomes the chat request's
 * thinking_token_budget where the server has a reasoning parser (else it is read past, as
 * {@code metadata} and {@code service_tier} are).
 */
public final class MessagesHandler {

    /** Fields of the Messages API that are not chat's: read here, not passed on. */
    private static final Set<String> MESSAGES_FIELDS = Set.of("system", "messages", "max_tokens", "stop_sequences",
            "tools", "tool_choice", "thinking", "metadata", "service_tier", "mcp_servers", "container",
            "context_management", "n", "logprobs", "response_format", "max_completion_tokens", "stop");

    private final ServerState state;
    private final GenerationRunner runner;
    private final long maxBodyBytes;
    private final ToolCallFormat toolCallParser;
    private final ReasoningFormat reasoningParser;

    /** The parsers as {@link ChatHandler} takes them: tool_choice auto's call format, the reasoning's. */
    public MessagesHandler(ServerState state, GenerationRunner runner, long maxBodyBytes, ToolCallFormat toolCallParser,
            ReasoningFormat reasoningParser) {
        this.state = state;
        this.runner = runner;
        this.maxBodyBytes = maxBodyBytes;
        this.toolCallParser = toolCallParser;
        this.reasoningParser = reasoningParser;
    }

    /** POST /v1/messages. */
    public void messages(Context ctx) throws Exception {
        ServedModel model = state.ready();
        ChatHandler.Prepared prepared = prepare(ctx, model, true);
        runner.run(ctx, model, new MessagesAnswer(model.name(), prepared.shape(), prepared.choices().getFirst()),
                prepared.settings(), prepared.choices(), prepared.requests());
    }

    /** POST /v1/messages/count_tokens: {@code {"input_tokens": n}}, the rendered prompt's tokens. */
    public void countTokens(Context ctx) {
        ServedModel model = state.ready();
        ChatHandler.Prepared prepared = prepare(ctx, model, false);
        Json.respond(ctx, 200, Json.object().put("input_tokens", prepared.choices().getFirst().promptTokens().length));
    }

    private ChatHandler.Prepared prepare(Context ctx, ServedModel model, boolean generates) {
        Fields fields = new Fields(JsonBody.read(ctx, maxBodyBytes));
        for (String unserved : List.of("mcp_servers", "container")) {
            if (fields.has(unserved)) {
                throw ApiException.invalid(unserved, unserved + " is not supported by this server");
            }
        }
        ObjectNode chat = fields.copyWithout(MESSAGES_FIELDS);
        chat.set("messages", messages(fields));
        if (generates) {
            if (!fields.has("max_tokens")) {
                throw ApiException.invalid("max_tokens", "max_tokens is required");
            }
            chat.set("max_tokens", fields.get("max_tokens"));
        } else {
            chat.put("max_tokens", 1);
        }
        if (fields.has("stop_sequences")) {
            chat.set("stop", fields.get("stop_sequences"));
        }
        if (fields.has("tools")) {
            chat.set("tools", tools(fields.get("tools")));
        }
        if (fields.has("tool_choice")) {
            toolChoice(fields.get("tool_choice"), chat);
        }
        JsonNode thinking = fields.get("thinking");
        if (thinking != null) {
            switch (thinking.path("type").asText("")) {
                case "enabled", "adaptive" -> {
                    ChatPrompt.setThinking(chat, true);
                    JsonNode budget = thinking.get("budget_tokens");
                    if (budget != null && !budget.isNull()) {
                        if (!budget.canConvertToExactIntegral() || !budget.canConvertToInt() || budget.asInt() < 0) {
                            throw ApiException.invalid("thinking", "thinking.budget_tokens must be an integer >= 0");
                        }
                        if (reasoningParser != null) {
                            chat.put("thinking_token_budget", budget.asInt());
                        }
                    }
                }
                case "disabled" -> ChatPrompt.setThinking(chat, false);
                default -> throw ApiException.invalid("thinking", "thinking.type must be \"enabled\", \"adaptive\" "
                        + "or \"disabled\"");
            }
        }
        return ChatHandler.prepare(new Fields(chat), model, toolCallParser, reasoningParser);
    }

    /** The chat messages of {@code system} and {@code messages}. */
    private static ArrayNode messages(Fields fields) {
        ArrayNode messages = Json.object().arrayNode();
        JsonNode system = fields.get("system");
        if (system != null) {
            messages.addObject().put("role", "system").put("content", text(system, "system"));
        }
        JsonNode given = fields.get("messages");
        if (given == null || !given.isArray() || given.isEmpty()) {
            throw ApiException.invalid("messages", "messages must be a non-empty array of {\"role\", \"content\"}");
        }
        for (int i = 0; i < given.size(); i++) {
            JsonNode message = given.get(i);
            String where = "messages[" + i + "]";
            String role = message.path("role").asText("");
            if (!role.equals("user") && !role.equals("assistant")) {
                throw ApiException.invalid("messages", where + ".role must be \"user\" or \"assistant\"");
            }
            JsonNode content = message.get("content");
            if (content != null && content.isTextual()) {
                messages.addObject().put("role", role).put("content", content.textValue());
                continue;
            }
            if (content == null || !content.isArray()) {
                throw ApiException.invalid("messages", where + ".content must be a string or an array of blocks");
            }
            StringBuilder text = new StringBuilder();
            ArrayNode calls = Json.object().arrayNode();
            for (int j = 0; j < content.size(); j++) {
                JsonNode block = content.get(j);
                String at = where + ".content[" + j + "]";
                switch (block.path("type").asText("")) {
                    case "text" -> text.append(Fields.stringIn(block, "text", "messages", at));
                    case "tool_use" -> {
                        JsonNode input = block.path("input").isObject() ? block.get("input") : Json.object();
                        calls.add(ToolCallShape.call(null, Fields.stringIn(block, "id", "messages", at),
                                Fields.stringIn(block, "name", "messages", at), Json.write(input)));
                    }
                    case "tool_result" -> messages.addObject().put("role", "tool")
                            .put("tool_call_id", Fields.stringIn(block, "tool_use_id", "messages", at))
                            .put("content", block.has("content") ? text(block.get("content"), at + ".content") : "");
                    case "thinking", "redacted_thinking" -> { } // a turn's reasoning is not the conversation's
                    default -> throw ApiException.invalid("messages", at + ": blocks of type " + block.path("type")
                            + " are not supported; give text, tool_use and tool_result blocks");
                }
            }
            if (!text.isEmpty() || !calls.isEmpty()) {
                ObjectNode turn = messages.addObject().put("role", role).put("content", text.toString());
                if (!calls.isEmpty()) {
                    turn.set("tool_calls", calls);
                }
            }
        }
        return messages;
    }

    /** A string, or text blocks joined (system, a tool_result's content). */
    private static String text(JsonNode value, String where) {
        if (value.isTextual()) {
            return value.textValue();
        }
        if (!value.isArray()) {
            throw ApiException.invalid(where.startsWith("system") ? "system" : "messages", where
                    + " must be a string or an array of text blocks");
        }
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < value.size(); i++) {
            JsonNode block = value.get(i);
            if (!block.path("type").asText("").equals("text")) {
                throw ApiException.invalid(where.startsWith("system") ? "system" : "messages", where + "[" + i
                        + "]: blocks of type " + block.path("type") + " are not supported here; give text blocks");
            }
            text.append(Fields.stringIn(block, "text", "messages", where + "[" + i + "]"));
        }
        return text.toString();
    }

    /** Chat's tools for custom tools {@code {"name", "description", "input_schema"}}. */
    private static ArrayNode tools(JsonNode tools) {
        if (!tools.isArray()) {
            throw ApiException.invalid("tools", "tools must be an array of tools");
        }
        ArrayNode chat = Json.object().arrayNode();
        for (int i = 0; i < tools.size(); i++) {
            JsonNode tool = tools.get(i);
            String type = tool.path("type").asText("custom");
            if (!type.equals("custom") || !tool.path("name").isTextual()) {
                throw ApiException.invalid("tools", "tools[" + i + "]: only custom tools with a name are supported, got "
                        + "type \"" + type + "\"");
            }
            ObjectNode function = Json.object().put("name", tool.get("name").textValue());
            if (tool.has("description")) {
                function.set("description", tool.get("description"));
            }
            function.set("parameters", tool.has("input_schema") ? tool.get("input_schema") : Json.object());
            chat.addObject().put("type", "function").set("function", function);
        }
        return chat;
    }

    /** Chat's tool_choice (and parallel_tool_calls) for Anthropic's {@code {"type": auto|any|tool|none}}. */
    private static void toolChoice(JsonNode choice, ObjectNode chat) {
        String type = choice.path("type").asText("");
        switch (type) {
            case "auto" -> chat.put("tool_choice", "auto");
            case "any" -> chat.put("tool_choice", "required");
            case "none" -> chat.put("tool_choice", "none");
            case "tool" -> {
                if (!choice.path("name").isTextual()) {
                    throw ApiException.invalid("tool_choice", "tool_choice of type tool needs a name");
                }
                chat.set("tool_choice", Json.object().put("type", "function")
                        .set("function", Json.object().put("name", choice.get("name").textValue())));
            }
            default -> throw ApiException.invalid("tool_choice", "tool_choice.type must be auto, any, tool or none");
        }
        if (choice.path("disable_parallel_tool_use").asBoolean(false)) {
            chat.put("parallel_tool_calls", false);
        }
    }
}
