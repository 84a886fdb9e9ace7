package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.engine.runner.OutputGrammar;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * The fields that hold a request's output to a grammar, read into the engine's {@link OutputGrammar}:
 * OpenAI's {@code response_format} ({@code text}, {@code json_object}, {@code json_schema}, and vLLM's
 * {@code structural_tag}), vLLM's {@code structured_outputs} ({@code json}, {@code json_object},
 * {@code choice}, {@code regex}, {@code grammar}, {@code structural_tag}), vLLM's older
 * {@code guided_json}, {@code guided_choice}, {@code guided_regex} and {@code guided_grammar}, and
 * llama.cpp's {@code grammar}. A grammar is GBNF, as llama.cpp writes it and vLLM takes it. A request
 * gives at most one of them. Whitespace patterns, which Coil does not hold output to, are refused by
 * name.
 */
final class StructuredOutput {

    private static final List<String> UNSUPPORTED = List.of("guided_whitespace_pattern");
    private static final List<String> UNSUPPORTED_STRUCTURED = List.of("whitespace_pattern");

    private StructuredOutput() {
    }

    /** The request's grammar, or null for free text. */
    static OutputGrammar parse(Fields fields) {
        for (String name : UNSUPPORTED) {
            if (fields.has(name)) {
                throw ApiException.invalid(name, name + " is not supported by this server; structured outputs take "
                        + "a JSON schema (response_format json_schema, guided_json), a list of choices, a regular "
                        + "expression or a grammar");
            }
        }
        List<String> given = new ArrayList<>();
        for (String name : List.of("structured_outputs", "guided_json", "guided_choice", "guided_regex",
                "guided_grammar", "grammar")) {
            if (fields.has(name)) {
                given.add(name);
            }
        }
        OutputGrammar format = responseFormat(fields);
        if (format != null) {
            given.addFirst("response_format");
        }
        if (given.size() > 1) {
            throw ApiException.invalid(given.get(1), "give one of " + String.join(" and ", given) + ", not both");
        }
        if (given.isEmpty() || format != null) {
            return format;
        }
        return switch (given.getFirst()) {
            case "guided_json" -> schema("guided_json", fields.get("guided_json"));
            case "guided_choice" -> choice("guided_choice", fields.get("guided_choice"));
            case "guided_regex" -> regex("guided_regex", "guided_regex", fields.get("guided_regex"));
            case "guided_grammar", "grammar" -> grammar(given.getFirst(), given.getFirst(), fields.get(given.getFirst()));
            default -> structuredOutputs(fields);
        };
    }

    /** OpenAI's response_format: null for {"type": "text"} or none. */
    private static OutputGrammar responseFormat(Fields fields) {
        var format = fields.object("response_format");
        if (format == null) {
            return null;
        }
        Fields formatFields = new Fields(format);
        String type = formatFields.has("type") && formatFields.get("type").isTextual()
                ? formatFields.get("type").textValue() : null;
        if (type == null) {
            throw ApiException.invalid("response_format", "response_format.type must be one of \"text\", "
                    + "\"json_object\", \"json_schema\" and \"structural_tag\"");
        }
        return switch (type) {
            case "text" -> null;
            case "json_object" -> OutputGrammar.jsonObject();
            case "json_schema" -> {
                JsonNode jsonSchema = formatFields.get("json_schema");
                if (jsonSchema == null || !jsonSchema.isObject()) {
                    throw ApiException.invalid("response_format", "response_format.json_schema must be an object "
                            + "with the schema under \"schema\"");
                }
                JsonNode schema = jsonSchema.get("schema");
                // OpenAI's json_schema may leave the schema out: then any JSON value.
                yield schema == null || schema.isNull() ? OutputGrammar.jsonSchema("true")
                        : schema("response_format", "response_format.json_schema.schema", schema);
            }
            // vLLM's: the response_format object is the structural tag itself.
            case "structural_tag" -> structuralTag("response_format", "response_format", format);
            default -> throw ApiException.invalid("response_format", "response_format.type must be one of "
                    + "\"text\", \"json_object\", \"json_schema\" and \"structural_tag\", got \"" + type + "\"");
        };
    }

    /** vLLM's structured_outputs: exactly one of json, json_object, choice and regex. */
    private static OutputGrammar structuredOutputs(Fields fields) {
        Fields options = new Fields(fields.object("structured_outputs"));
        for (String name : UNSUPPORTED_STRUCTURED) {
            if (options.has(name)) {
                throw ApiException.invalid("structured_outputs", "structured_outputs." + name + " is not supported "
                        + "by this server; give json, json_object, choice, regex, grammar or structural_tag");
            }
        }
        List<String> given = new ArrayList<>();
        for (String name : List.of("json", "json_object", "choice", "regex", "grammar", "structural_tag")) {
            if (options.has(name) && !(name.equals("json_object") && !options.get(name).asBoolean(false))) {
                given.add(name);
            }
        }
        if (given.size() != 1) {
            throw ApiException.invalid("structured_outputs", "structured_outputs must give one of json, json_object, "
                    + "choice, regex, grammar and structural_tag"
                    + (given.isEmpty() ? "" : ", got " + String.join(" and ", given)));
        }
        return switch (given.getFirst()) {
            case "json" -> schema("structured_outputs", "structured_outputs.json", options.get("json"));
            case "json_object" -> OutputGrammar.jsonObject();
            case "regex" -> regex("structured_outputs", "structured_outputs.regex", options.get("regex"));
            case "grammar" -> grammar("structured_outputs", "structured_outputs.grammar", options.get("grammar"));
            case "structural_tag" -> structuralTag("structured_outputs", "structured_outputs.structural_tag",
                    options.get("structural_tag"));
            default -> choice("structured_outputs", "structured_outputs.choice", options.get("choice"));
        };
    }

    /**
     * A structural tag: its JSON text in a string (as vLLM's structured_outputs takes it) or the object
     * itself; what the engine refuses is a 400 naming the field.
     */
    private static OutputGrammar structuralTag(String param, String name, JsonNode tag) {
        if (tag == null || !(tag.isObject() || tag.isTextual() && !tag.textValue().isEmpty())) {
            throw ApiException.invalid(param, name + " must be a structural tag: an object or its JSON text");
        }
        try {
            return OutputGrammar.structuralTag(tag.isTextual() ? tag.textValue() : tag.toString());
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid(param, name + ": " + e.getMessage());
        }
    }

    /** A regular expression the whole output must match, in a string. */
    private static OutputGrammar regex(String param, String name, JsonNode pattern) {
        return fromText(param, name, pattern, "a non-empty string", OutputGrammar::regex);
    }

    /** A GBNF grammar the whole output must be a sentence of, in a string. */
    private static OutputGrammar grammar(String param, String name, JsonNode grammar) {
        return fromText(param, name, grammar, "a non-empty string of GBNF", OutputGrammar::grammar);
    }

    /** A grammar made from a string field; what the maker refuses is a 400 naming the field. */
    private static OutputGrammar fromText(String param, String name, JsonNode text, String expected,
            Function<String, OutputGrammar> maker) {
        if (text == null || !text.isTextual() || text.textValue().isEmpty()) {
            throw ApiException.invalid(param, name + " must be " + expected);
        }
        try {
            return maker.apply(text.textValue());
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid(param, name + ": " + e.getMessage());
        }
    }

    private static OutputGrammar schema(String name, JsonNode schema) {
        return schema(name, name, schema);
    }

    /** A schema given as a JSON object (or boolean), or as JSON text in a string, as vLLM takes both. */
    private static OutputGrammar schema(String param, String name, JsonNode schema) {
        String text = schema.isTextual() ? schema.textValue() : schema.toString();
        try {
            return OutputGrammar.jsonSchema(text);
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid(param, name + ": " + e.getMessage());
        }
    }

    private static OutputGrammar choice(String name, JsonNode choices) {
        return choice(name, name, choices);
    }

    private static OutputGrammar choice(String param, String name, JsonNode choices) {
        if (choices == null || !choices.isArray() || choices.isEmpty()) {
            throw ApiException.invalid(param, name + " must be a non-empty array of strings");
        }
        List<String> texts = new ArrayList<>();
        for (JsonNode choice : choices) {
            if (!choice.isTextual() || choice.textValue().isEmpty()) {
                throw ApiException.invalid(param, name + " must hold non-empty strings, got " + Fields.typeName(choice)
                        + (choice.isTextual() ? " (empty)" : ""));
            }
            texts.add(choice.textValue());
        }
        return OutputGrammar.choice(texts);
    }
}
