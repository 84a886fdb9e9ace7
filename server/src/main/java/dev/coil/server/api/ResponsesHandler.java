package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import java.util.List;
import java.util.Set;

/**
 * POST /v1/responses: OpenAI's Responses API, as vLLM serves it. The request is read as the chat
 * request it stands for ({@link ChatHandler#prepare}): {@code instructions} a system message first,
 * {@code input} a user message (a string) or the conversation's items (messages of a string or
 * input_text / output_text parts, developer read as system; function_call items as the assistant's
 * tool_calls, function_call_output items as tool messages; reasoning items left out, as chat leaves
 * a turn's reasoning out), {@code max_output_tokens} as max_tokens, {@code text.format} as
 * response_format, function {@code tools} and {@code tool_choice} as chat's, {@code temperature},
 * {@code top_p}, {@code stream}, and vLLM's sampling extras (seed, top_k, stop, ...) as chat takes
 * them. The answer is chat's, read into output items ({@link ResponsesAnswer}).
 *
 * <p>Responses are not stored ({@code store} is answered false): {@code previous_response_id} and
 * {@code conversation} are a 400, as are tools other than functions, items other than those above,
 * parts other than text, {@code background}, {@code include}, {@code top_logprobs} and
 * {@code truncation: "auto"}, each naming the field. {@code reasoning} and {@code text.verbosity} are
 * read past: the served models take no effort setting.
 */
public final class ResponsesHandler implements Handler {

    /** Fields of the Responses API that are not chat's: read here, not passed on. */
    private static final Set<String> RESPONSES_FIELDS = Set.of("input", "instructions", "max_output_tokens", "text",
            "tools", "tool_choice", "parallel_tool_calls", "previous_response_id", "conversation", "store", "background",
            "include", "top_logprobs", "truncation", "reasoning", "metadata", "user", "safety_identifier",
            "prompt_cache_key", "service_tier", "max_tool_calls", "stream_options", "prompt", "messages", "n",
            "logprobs", "max_tokens", "max_completion_tokens", "response_format");

    private final ServerState state;
    private final GenerationRunner runner;
    private final long maxBodyBytes;
    private final ToolCallFormat toolCallParser;
    private final ReasoningFormat reasoningParser;

    /** The parsers as {@link ChatHandler} takes them: tool_choice "auto"'s call format, the reasoning's. */
    public ResponsesHandler(ServerState state, GenerationRunner runner, long maxBodyBytes, ToolCallFormat toolCallParser,
            ReasoningFormat reasoningParser) {
        this.state = state;
        this.runner = runner;
        this.maxBodyBytes = maxBodyBytes;
        this.toolCallParser = toolCallParser;
        this.reasoningParser = reasoningParser;
    }

    @Override
    public void handle(Context ctx) throws Exception {
        ServedModel model = state.ready();
        Fields fields = new Fields(JsonBody.read(ctx, maxBodyBytes));
        refuseWhatIsNotServed(fields);
        JsonNode format = textFormat(fields);
        ChatHandler.Prepared prepared;
        try {
            prepared = ChatHandler.prepare(new Fields(chatRequest(fields, format)), model, toolCallParser,
                    reasoningParser);
        } catch (ApiException e) {
            throw renamed(e);
        }
        runner.run(ctx, model, new ResponsesAnswer(model.name(), echo(fields, format, prepared), prepared.shape(),
                prepared.choices().getFirst()), prepared.settings(), prepared.choices(), prepared.requests());
    }

    /**
     * The chat request a Responses request stands for ({@code format}: its text.format, or null): its own
     * fields renamed, the others (vLLM's extras) as they are.
     */
    private static ObjectNode chatRequest(Fields fields, JsonNode format) {
        ObjectNode chat = fields.copyWithout(RESPONSES_FIELDS);
        chat.set("messages", messages(fields));
        if (fields.has("max_output_tokens")) {
            chat.set("max_tokens", fields.get("max_output_tokens"));
        }
        if (format != null) {
            chat.set("response_format", responseFormat(format));
        }
        if (fields.has("tools")) {
            chat.set("tools", tools(fields.get("tools")));
        }
        if (fields.has("tool_choice")) {
            chat.set("tool_choice", toolChoice(fields.get("tool_choice")));
        }
        if (fields.has("parallel_tool_calls")) {
            chat.set("parallel_tool_calls", fields.get("parallel_tool_calls"));
        }
        return chat;
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

    /** The fields that ask for what this server does not do, each a 400 naming it. */
    private static void refuseWhatIsNotServed(Fields fields) {
        for (String stored : List.of("previous_response_id", "conversation")) {
            if (fields.has(stored)) {
                throw ApiException.invalid(stored, stored + " is not supported: this server does not store responses");
            }
        }
        if (fields.bool("background", false)) {
            throw ApiException.invalid("background", "background responses are not supported");
        }
        if (fields.has("include") && !(fields.get("include").isArray() && fields.get("include").isEmpty())) {
            throw ApiException.invalid("include", "include is not supported: a response holds its output text only");
        }
        if (fields.integer("top_logprobs", 0, 20, 0) > 0) {
            throw ApiException.invalid("top_logprobs", "top_logprobs is not supported on /v1/responses; "
                    + "/v1/chat/completions takes logprobs");
        }
        String truncation = fields.string("truncation");
        if (truncation != null && !truncation.equals("disabled")) {
            throw ApiException.invalid("truncation", "truncation must be \"disabled\"");
        }
        if (fields.has("prompt")) {
            throw ApiException.invalid("prompt", "prompt templates are not supported; give input");
        }
        for (String chatOnly : List.of("messages", "n", "logprobs", "max_tokens", "max_completion_tokens",
                "response_format")) {
            if (fields.has(chatOnly)) {
                throw ApiException.invalid(chatOnly, chatOnly + " is not a field of /v1/responses"
                        + switch (chatOnly) {
                            case "messages" -> "; give input";
                            case "max_tokens", "max_completion_tokens" -> "; give max_output_tokens";
                            case "response_format" -> "; give text.format";
                            default -> "";
                        });
            }
        }
    }

    /** The chat messages of {@code instructions} and {@code input}. */
    private static ArrayNode messages(Fields fields) {
        ArrayNode messages = Json.object().arrayNode();
        String instructions = fields.string("instructions");
        if (instructions != null) {
            messages.addObject().put("role", "system").put("content", instructions);
        }
        JsonNode input = fields.get("input");
        if (input == null) {
            throw ApiException.invalid("input", "input is required: a string or an array of messages");
        }
        if (input.isTextual()) {
            messages.addObject().put("role", "user").put("content", input.textValue());
            return messages;
        }
        if (!input.isArray() || input.isEmpty()) {
            throw ApiException.invalid("input", "input must be a string or a non-empty array of messages, got "
                    + Fields.typeName(input));
        }
        for (int i = 0; i < input.size(); i++) {
            JsonNode item = input.get(i);
            String where = "input[" + i + "]";
            if (!item.isObject()) {
                throw ApiException.invalid("input", where + " must be a message object, got " + Fields.typeName(item));
            }
            String type = item.path("type").asText("message");
            switch (type) {
                case "function_call" -> {
                    callOf(messages).add(ToolCallShape.call(null, Fields.stringIn(item, "call_id", "input", where),
                            Fields.stringIn(item, "name", "input", where),
                            Fields.stringIn(item, "arguments", "input", where)));
                    continue;
                }
                case "function_call_output" -> {
                    JsonNode output = item.get("output");
                    String callId = Fields.stringIn(item, "call_id", "input", where);
                    messages.addObject().put("role", "tool").put("tool_call_id", callId)
                            .put("content", output != null && output.isTextual() ? output.textValue()
                                    : content(output, where + ".output"));
                    continue;
                }
                case "reasoning" -> {
                    continue; // a turn's reasoning is not the conversation's, as in chat
                }
                case "message" -> { }
                default -> throw ApiException.invalid("input", where + ": items of type \"" + type + "\" are not "
                        + "supported; give messages, function_call and function_call_output items");
            }
            JsonNode role = item.get("role");
            if (role == null || !role.isTextual()
                    || !Set.of("user", "assistant", "system", "developer").contains(role.textValue())) {
                throw ApiException.invalid("input", where + ".role must be \"user\", \"assistant\", \"system\" or "
                        + "\"developer\"");
            }
            messages.addObject().put("role", role.textValue().equals("developer") ? "system" : role.textValue())
                    .put("content", content(item.get("content"), where + ".content"));
        }
        return messages;
    }

    /**
     * The tool_calls array a function_call item joins: the last message's when it is the assistant's
     * (its text or calls just before), else a new assistant message's.
     */
    private static ArrayNode callOf(ArrayNode messages) {
        JsonNode last = messages.isEmpty() ? null : messages.get(messages.size() - 1);
        if (last instanceof ObjectNode message && message.path("role").asText().equals("assistant")) {
            return message.has("tool_calls") ? (ArrayNode) message.get("tool_calls") : message.putArray("tool_calls");
        }
        ObjectNode message = messages.addObject().put("role", "assistant").put("content", "");
        return message.putArray("tool_calls");
    }

    /** Chat's tools for the Responses API's: {@code {"type": "function", "name", ...}} wrapped as chat's function. */
    private static ArrayNode tools(JsonNode tools) {
        if (!tools.isArray()) {
            throw ApiException.invalid("tools", "tools must be an array of function tools");
        }
        ArrayNode chat = Json.object().arrayNode();
        for (int i = 0; i < tools.size(); i++) {
            JsonNode tool = tools.get(i);
            if (!tool.path("type").asText().equals("function")) {
                throw ApiException.invalid("tools", "tools[" + i + "]: tools of type " + tool.path("type")
                        + " are not supported; give function tools");
            }
            ObjectNode function = Json.object();
            tool.properties().forEach(field -> {
                if (!field.getKey().equals("type")) {
                    function.set(field.getKey(), field.getValue());
                }
            });
            chat.addObject().put("type", "function").set("function", function);
        }
        return chat;
    }

    /** Chat's tool_choice: the same strings, a named function {@code {"type": "function", "name"}} as chat's. */
    private static JsonNode toolChoice(JsonNode choice) {
        if (choice.isTextual()) {
            return choice;
        }
        if (choice.isObject() && choice.path("type").asText().equals("function") && choice.path("name").isTextual()) {
            return Json.object().put("type", "function").set("function",
                    Json.object().put("name", choice.get("name").textValue()));
        }
        throw ApiException.invalid("tool_choice", "tool_choice must be \"auto\", \"none\", \"required\" or "
                + "{\"type\": \"function\", \"name\": …}");
    }

    /** A message's content: a string, or its text parts (input_text, output_text) joined. */
    private static String content(JsonNode content, String where) {
        if (content != null && content.isTextual()) {
            return content.textValue();
        }
        if (content == null || !content.isArray()) {
            throw ApiException.invalid("input", where + " must be a string or an array of text parts");
        }
        StringBuilder text = new StringBuilder();
        for (int j = 0; j < content.size(); j++) {
            JsonNode part = content.get(j);
            JsonNode type = part.get("type");
            if (type == null || !type.isTextual()
                    || !Set.of("input_text", "output_text", "text").contains(type.textValue())) {
                throw ApiException.invalid("input", where + "[" + j + "]: parts of type " + type + " are not supported; "
                        + "give input_text");
            }
            JsonNode partText = part.get("text");
            if (partText == null || !partText.isTextual()) {
                throw ApiException.invalid("input", where + "[" + j + "].text must be a string");
            }
            text.append(partText.textValue());
        }
        return text.toString();
    }

    /** {@code text.format}, or null for plain text. */
    private static JsonNode textFormat(Fields fields) {
        ObjectNode text = fields.object("text");
        if (text == null) {
            return null;
        }
        JsonNode format = text.get("format");
        if (format == null || format.isNull()) {
            return null;
        }
        if (!format.isObject() || !format.path("type").isTextual()) {
            throw ApiException.invalid("text", "text.format must be an object with a type");
        }
        return format;
    }

    /** Chat's response_format for a text.format: json_schema's name, schema and strict move under json_schema. */
    private static ObjectNode responseFormat(JsonNode format) {
        String type = format.get("type").textValue();
        ObjectNode responseFormat = Json.object().put("type", type);
        if (type.equals("json_schema")) {
            ObjectNode jsonSchema = responseFormat.putObject("json_schema");
            format.properties().forEach(field -> {
                if (!field.getKey().equals("type")) {
                    jsonSchema.set(field.getKey(), field.getValue());
                }
            });
            if (!format.has("schema")) {
                throw ApiException.invalid("text", "text.format of type json_schema needs a schema");
            }
        }
        return responseFormat;
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
