package dev.coil.server.api;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.OutputGrammar;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * A chat request's {@code tools} and {@code tool_choice}, as OpenAI's API has them. The tools go to
 * the chat template (its {@code tools} variable, as transformers passes them). A call is made the way
 * vLLM makes one without a parser of the model's own call format: the answer is held to a grammar.
 * <ul>
 * <li>a named function ({@code {"type": "function", "function": {"name": ...}}}): the answer is that
 *     function's arguments, a JSON value its {@code parameters} schema holds valid;</li>
 * <li>{@code "required"}: the answer is a JSON array of {@code {"name", "parameters"}} objects, one or
 *     more calls (one with {@code parallel_tool_calls} false);</li>
 * <li>{@code "none"}: a plain answer.</li>
 * </ul>
 * {@code "auto"}, the default when tools are given, needs the model's own call format (the server's
 * {@code --tool-call-parser}, {@code autoFormat} here): the answer is free, and the calls it writes
 * are read out of it ({@link ReadChatShape}). Without a parser it is a 400, as vLLM answers.
 *
 * @param autoFormat the format the calls of an "auto" answer are read in; null for any other choice
 */
record ToolCalls(List<Tool> tools, String forced, boolean required, boolean parallel, ToolCallFormat autoFormat) {

    /** One function tool. */
    record Tool(String name, JsonNode parameters) {
    }

    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_-]{1,64}");

    /** Each tool's {@code parameters.properties} (an empty object where it gives none) by the tool's name. */
    Map<String, JsonNode> parameterProperties() {
        Map<String, JsonNode> properties = new HashMap<>();
        for (Tool tool : tools) {
            JsonNode given = tool.parameters() == null ? null : tool.parameters().get("properties");
            properties.put(tool.name(), given != null && given.isObject() ? given : Json.object());
        }
        return properties;
    }

    /**
     * The request's tools, or null when it has none (and no tool_choice).
     *
     * @param parser the server's {@code --tool-call-parser}, or null: then "auto" is refused
     */
    static ToolCalls parse(Fields fields, ToolCallFormat parser) {
        JsonNode toolsNode = fields.get("tools");
        JsonNode choice = fields.get("tool_choice");
        if (toolsNode == null || (toolsNode.isArray() && toolsNode.isEmpty())) {
            if (choice != null && !(choice.isTextual() && choice.textValue().equals("none"))) {
                throw ApiException.invalid("tool_choice", "tool_choice is only allowed when tools are given");
            }
            return null;
        }
        if (!toolsNode.isArray()) {
            throw ApiException.invalid("tools", "tools must be an array of {\"type\": \"function\", \"function\": "
                    + "{\"name\", \"description\", \"parameters\"}} objects, got " + Fields.typeName(toolsNode));
        }
        List<Tool> tools = new ArrayList<>();
        Set<String> names = new LinkedHashSet<>();
        for (int i = 0; i < toolsNode.size(); i++) {
            String where = "tools[" + i + "]";
            JsonNode tool = toolsNode.get(i);
            JsonNode function = tool.path("function");
            if (!"function".equals(tool.path("type").asText()) || !function.isObject()) {
                throw ApiException.invalid("tools", where + " must be {\"type\": \"function\", \"function\": {...}}");
            }
            String name = function.path("name").asText("");
            if (!NAME.matcher(name).matches()) {
                throw ApiException.invalid("tools", where + ".function.name must be 1 to 64 letters, digits, "
                        + "underscores or dashes, got \"" + name + "\"");
            }
            if (!names.add(name)) {
                throw ApiException.invalid("tools", where + ".function.name \"" + name + "\" is given twice");
            }
            JsonNode parameters = function.get("parameters");
            if (parameters != null && !parameters.isNull() && !parameters.isObject()) {
                throw ApiException.invalid("tools", where + ".function.parameters must be a JSON schema object");
            }
            tools.add(new Tool(name, parameters == null || parameters.isNull()
                    ? Json.MAPPER.createObjectNode().put("type", "object").set("properties", Json.object())
                    : parameters));
        }
        String forced = null;
        boolean required = false;
        ToolCallFormat autoFormat = null;
        if (choice == null || choice.isTextual()) {
            String mode = choice == null ? "auto" : choice.textValue();
            switch (mode) {
                case "none" -> { }
                case "required" -> required = true;
                case "auto" -> {
                    if (parser == null) {
                        throw ApiException.invalid("tool_choice", "tool_choice \"auto\" (the default with tools) "
                                + "needs a parser of the model's own tool-call format: start the server with "
                                + "--tool-call-parser (" + ToolCallFormat.parserNames() + "), or give tool_choice \"required\", {\"type\": "
                                + "\"function\", \"function\": {\"name\": ...}}, or \"none\"");
                    }
                    autoFormat = parser;
                }
                default -> throw ApiException.invalid("tool_choice", "tool_choice must be \"none\", \"auto\", "
                        + "\"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}, got \""
                        + mode + "\"");
            }
        } else {
            forced = choice.path("function").path("name").asText(null);
            if (!"function".equals(choice.path("type").asText()) || forced == null) {
                throw ApiException.invalid("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or "
                        + "{\"type\": \"function\", \"function\": {\"name\": ...}}");
            }
            if (!names.contains(forced)) {
                throw ApiException.invalid("tool_choice", "tool_choice names the function \"" + forced
                        + "\", which tools does not define");
            }
        }
        return new ToolCalls(List.copyOf(tools), forced, required, fields.bool("parallel_tool_calls", true),
                autoFormat);
    }

    /** Whether the answer is a call (a named function or "required"), not text. */
    boolean calls() {
        return forced != null || required;
    }

    /** What the answer is held to: the named function's arguments, or the list of calls; null for "none". */
    OutputGrammar grammar() {
        if (!calls()) {
            return null;
        }
        JsonNode schema;
        if (forced != null) {
            schema = tools.stream().filter(tool -> tool.name().equals(forced)).findFirst().orElseThrow().parameters();
        } else {
            ArrayNode alternatives = Json.MAPPER.createArrayNode();
            for (Tool tool : tools) {
                String at = "/items/anyOf/" + alternatives.size() + "/properties/parameters";
                ObjectNode call = alternatives.addObject().put("type", "object");
                ObjectNode properties = call.putObject("properties");
                properties.putObject("name").putArray("enum").add(tool.name());
                // Its references within itself ("#/$defs/...") still name its own parts there.
                properties.set("parameters", SchemaReferences.placedAt(tool.parameters(), at));
                call.putArray("required").add("name").add("parameters");
            }
            ObjectNode array = Json.MAPPER.createObjectNode().put("type", "array").put("minItems", 1);
            if (!parallel) {
                array.put("maxItems", 1);
            }
            array.putObject("items").set("anyOf", alternatives);
            schema = array;
        }
        try {
            return OutputGrammar.jsonSchema(schema.toString());
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid("tools", "tools: a function's parameters: " + e.getMessage());
        }
    }

    /**
     * The chat template's extra variables: {@code tools}, as the request gave them (none without tools).
     * Read for every rendering, /tokenize's too; no tool_choice is read here.
     */
    static Map<String, Object> templateVariables(Fields fields) {
        JsonNode tools = fields.get("tools");
        return tools == null || !tools.isArray() || tools.isEmpty() ? Map.of()
                : Map.of("tools", Json.MAPPER.convertValue(tools, new TypeReference<List<Object>>() { }));
    }
}
