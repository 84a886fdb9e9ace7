package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServedModel;
import java.util.List;
import java.util.Set;
import java.util.function.IntPredicate;

/**
 * A Responses request read as the chat request it stands for ({@code chat}, which
 * {@link ChatHandler#prepare} then reads): {@code instructions} a system message first, then the
 * conversation ({@link ResponseInput}): the items of the response named by
 * {@code previous_response_id} (its conversation and its output; not its instructions, as OpenAI's),
 * or those of the {@code conversation} named (an id or {@code {"id"}}, kept by the
 * {@link ConversationStore}), then {@code input}, a user message (a string) or items (messages of a
 * string or input_text / output_text parts, developer read as system; function_call items as the
 * assistant's tool_calls, function_call_output items as tool messages; reasoning items left out, as
 * chat leaves a turn's reasoning out); {@code max_output_tokens} as max_tokens, {@code text.format} as
 * response_format, function {@code tools} and {@code tool_choice} as chat's,
 * {@code include: ["message.output_text.logprobs"]} with {@code top_logprobs} as chat's logprobs, and
 * vLLM's sampling extras (seed, top_k, stop, ...) as chat takes them. {@code truncation: "auto"} drops
 * the conversation's first items from the prompt until it fits the context window ({@link #truncate}).
 *
 * <p>Tools other than functions are a 400, as are items other than those above, parts other than
 * text, include values OpenAI does not have, and {@code conversation} with
 * {@code previous_response_id}, each naming the field. {@code reasoning.effort} "none" goes to the chat
 * template as {@code enable_thinking: false} (unless chat_template_kwargs give it); other efforts and
 * {@code text.verbosity} are read past: the served models take no effort setting; so are include values
 * for what these answers never hold (built-in tools' results, images, encrypted reasoning).
 *
 * @param chat           the chat request it stands for, truncated where asked
 * @param conversation   the items continued, then the input's (from {@code inputFrom}), none left out
 * @param inputFrom      where the input's items start in {@code conversation}
 * @param input          the input's items alone
 * @param previousId     previous_response_id, or null
 * @param conversationId the conversation's id, or null
 * @param truncating     whether truncation is "auto"
 * @param logprobs       whether the message's logprobs were asked for
 * @param format         text.format, or null for plain text
 */
record ResponsesRequest(ObjectNode chat, ArrayNode conversation, int inputFrom, ArrayNode input, String previousId,
        String conversationId, boolean truncating, boolean logprobs, JsonNode format) {

    /** Fields of the Responses API that are not chat's: read here, not passed on. */
    private static final Set<String> RESPONSES_FIELDS = Set.of("input", "instructions", "max_output_tokens", "text",
            "tools", "tool_choice", "parallel_tool_calls", "previous_response_id", "conversation", "store", "background",
            "include", "top_logprobs", "truncation", "reasoning", "metadata", "user", "safety_identifier",
            "prompt_cache_key", "service_tier", "max_tool_calls", "stream_options", "prompt", "messages", "n",
            "logprobs", "max_tokens", "max_completion_tokens", "response_format");

    /** OpenAI's include values for what these answers never hold, read past. */
    private static final Set<String> INCLUDE_VALUES = Set.of("reasoning.encrypted_content", "file_search_call.results",
            "web_search_call.results", "web_search_call.action.sources", "message.input_image.image_url",
            "computer_call_output.output.image_url", "code_interpreter_call.outputs");

    /**
     * Reads {@code fields}: the items of {@code previous_response_id} (from {@code store}) or of
     * {@code conversation} (from {@code conversations}), then the input; refused with the Responses
     * API's errors, each naming its field.
     */
    static ResponsesRequest read(Fields fields, ServedModel model, ResponseStore store,
            ConversationStore conversations) {
        refuseWhatIsNotServed(fields);
        boolean logprobs = includesLogprobs(fields);
        JsonNode format = textFormat(fields);
        ArrayNode input = ResponseInput.items(fields.get("input"));
        String previousId = fields.string("previous_response_id");
        String conversationId = conversationId(fields);
        if (previousId != null && conversationId != null) {
            throw ApiException.invalid("conversation", "conversation and previous_response_id cannot both be given: "
                    + "a response continues one or the other");
        }
        ArrayNode conversation = previousId != null ? previousConversation(previousId, store)
                : conversationId != null ? conversationItems(conversationId, conversations) : Json.object().arrayNode();
        int inputFrom = conversation.size();
        conversation.addAll(input);
        ObjectNode chat = chatRequest(fields, format, ResponseInput.messages(fields.string("instructions"), conversation));
        if (logprobs) {
            chat.put("logprobs", true).put("top_logprobs", fields.integer("top_logprobs", 0, 20, 0));
        }
        ObjectNode reasoning = fields.object("reasoning");
        if (reasoning != null && reasoning.path("effort").asText("").equals("none")) {
            ChatPrompt.setThinking(chat, false);
        }
        boolean truncating = truncation(fields);
        if (truncating) {
            truncate(chat, fields.string("instructions"), conversation, model);
        }
        return new ResponsesRequest(chat, conversation, inputFrom, input, previousId, conversationId, truncating,
                logprobs, format);
    }

    /** Whether {@code truncation} is "auto" (rather than "disabled", the default). */
    private static boolean truncation(Fields fields) {
        String truncation = fields.string("truncation");
        if (truncation != null && !truncation.equals("auto") && !truncation.equals("disabled")) {
            throw ApiException.invalid("truncation", "truncation must be \"auto\" or \"disabled\", got \""
                    + truncation + "\"");
        }
        return "auto".equals(truncation);
    }

    /**
     * {@code truncation: "auto"}: when the prompt of {@code chat} (instructions, then {@code items})
     * and the output it asks for do not fit the context window, its messages become those of the
     * fewest first items dropped that make them fit (a function call's output left at the start
     * without its call goes too); the last item always stays, and a prompt that still does not fit is
     * refused as any other. The items themselves (stored, or in a conversation) are not changed.
     */
    private static void truncate(ObjectNode chat, String instructions, ArrayNode items, ServedModel model) {
        int window = model.contextLength();
        JsonNode maxTokens = chat.get("max_tokens");
        int room = maxTokens != null && maxTokens.canConvertToInt() ? Math.max(1, maxTokens.intValue()) : 1;
        IntPredicate fits = dropped -> {
            ObjectNode candidate = chat.deepCopy();
            candidate.set("messages", ResponseInput.messages(instructions, kept(items, dropped)));
            return (long) ChatPrompt.tokens(new Fields(candidate), model, false).length + room <= window;
        };
        if (window <= 0 || items.size() < 2 || fits.test(0)) {
            return;
        }
        // Dropping more items never lengthens the prompt: the fewest that fit are found by bisection.
        int tooFew = 0;
        int enough = items.size() - 1;
        while (enough - tooFew > 1) {
            int middle = (tooFew + enough) >>> 1;
            if (fits.test(middle)) {
                enough = middle;
            } else {
                tooFew = middle;
            }
        }
        chat.set("messages", ResponseInput.messages(instructions, kept(items, enough)));
    }

    /** {@code items} but the first {@code dropped}, and any function_call_output then at their start but the last. */
    private static ArrayNode kept(ArrayNode items, int dropped) {
        int start = dropped;
        while (start < items.size() - 1 && items.get(start).path("type").asText().equals("function_call_output")) {
            start++;
        }
        ArrayNode kept = Json.object().arrayNode();
        for (int i = start; i < items.size(); i++) {
            kept.add(items.get(i));
        }
        return kept;
    }

    /** {@code conversation}: a conversation's id, or {@code {"id": …}}; null when not given. */
    static String conversationId(Fields fields) {
        JsonNode given = fields.get("conversation");
        if (given == null || given.isNull()) {
            return null;
        }
        if (given.isTextual()) {
            return given.textValue();
        }
        if (given.isObject() && given.path("id").isTextual()) {
            return given.get("id").textValue();
        }
        throw ApiException.invalid("conversation", "conversation must be a conversation's id or {\"id\": …}, got "
                + Fields.typeName(given));
    }

    /** The items of the conversation a response continues: a 404 when it is not kept. */
    private static ArrayNode conversationItems(String id, ConversationStore conversations) {
        List<JsonNode> items = conversations.items(id);
        if (items == null) {
            throw ConversationsHandler.notFound(id, "conversation");
        }
        ArrayNode conversation = Json.object().arrayNode();
        conversation.addAll(items);
        return conversation;
    }

    /** The items a response continues from {@code previous_response_id}: a 400 when it is not stored. */
    private static ArrayNode previousConversation(String id, ResponseStore store) {
        ResponseStore.Found previous = store.find(id);
        if (previous == null) {
            throw new ApiException(400, "invalid_request_error", "previous_response_id", "previous_response_not_found",
                    "Previous response with id '" + id + "' not found." + (store.enabled() ? ""
                            : " This server stores no responses (--response-store 0)."));
        }
        return previous.conversation();
    }

    /**
     * Whether {@code include} asks for the message's logprobs; include values OpenAI has for what these
     * answers never hold are read past, others are a 400.
     */
    private static boolean includesLogprobs(Fields fields) {
        JsonNode include = fields.get("include");
        if (include == null) {
            return false;
        }
        if (!include.isArray()) {
            throw ApiException.invalid("include", "include must be an array of strings");
        }
        boolean logprobs = false;
        for (int i = 0; i < include.size(); i++) {
            JsonNode value = include.get(i);
            if (value.isTextual() && value.textValue().equals("message.output_text.logprobs")) {
                logprobs = true;
            } else if (!value.isTextual() || !INCLUDE_VALUES.contains(value.textValue())) {
                throw ApiException.invalid("include", "include[" + i + "]: " + value + " is not one of "
                        + "\"message.output_text.logprobs\", " + String.join(", ", INCLUDE_VALUES.stream()
                                .sorted().map(name -> "\"" + name + "\"").toList()));
            }
        }
        return logprobs;
    }

    /**
     * The chat request a Responses request stands for ({@code format}: its text.format, or null;
     * {@code messages}: its conversation's): its own fields renamed, the others (vLLM's extras) as they are.
     */
    private static ObjectNode chatRequest(Fields fields, JsonNode format, ArrayNode messages) {
        ObjectNode chat = fields.copyWithout(RESPONSES_FIELDS);
        chat.set("messages", messages);
        if (fields.has("max_output_tokens")) {
            chat.set("max_tokens", fields.get("max_output_tokens"));
        }
        if (format != null) {
            chat.set("response_format", responseFormat(format));
        }
        if (fields.has("tools")) {
            chat.set("tools", tools(fields.get("tools")));
        }
        JsonNode choice = fields.get("tool_choice");
        boolean noTools = !fields.has("tools") || fields.get("tools").isEmpty();
        // "auto" is the Responses API's default, so clients send it with no tools too (OpenAI takes it so);
        // chat would refuse a tool_choice without tools.
        if (choice != null && !(noTools && choice.isTextual() && choice.textValue().equals("auto"))) {
            chat.set("tool_choice", toolChoice(choice));
        }
        if (fields.has("parallel_tool_calls")) {
            chat.set("parallel_tool_calls", fields.get("parallel_tool_calls"));
        }
        return chat;
    }

    /** The fields that ask for what this server does not do, each a 400 naming it. */
    private static void refuseWhatIsNotServed(Fields fields) {
        fields.integer("top_logprobs", 0, 20);
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
}
