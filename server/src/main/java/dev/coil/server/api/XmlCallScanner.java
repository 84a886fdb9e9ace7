package dev.coil.server.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Reads the calls of one tool-call block written as Qwen3-Coder and Nemotron 3 Nano write them
 * (vLLM's {@code qwen3_coder} parser): a function and its parameters as tags,
 * <pre>
 * &lt;function=get_weather&gt;
 * &lt;parameter=city&gt;
 * Paris
 * &lt;/parameter&gt;
 * &lt;/function&gt;
 * </pre>
 * one or more functions to a block. A parameter's value is its text, less one new line after its
 * opening tag and one before its end; it ends at {@code </parameter>}, or where the next parameter or
 * the function's end begins. The arguments are the JSON object of the parameters, each value read by
 * the type its function's {@code parameters} schema gives the parameter: a string as it is; an integer
 * or a number as one where it spells one (a number with no fraction as an integer); a boolean true
 * only for "true" in any case; an object, an array or another type as the JSON it spells, else as a
 * string; "null" in any case as null; a parameter the schema does not name as a string.
 * <p>
 * A call is made once its {@code <function=NAME>} tag is whole: its {@link CallScanner.Start}, then
 * "{"; each parameter comes back as one {@link CallScanner.Arguments} piece once its value has ended,
 * and "}" once the function ends or the block does (a value the block's end cut short is taken as it
 * stands). A block that does not begin with a function tag makes no call: its reader gives it back
 * as text. Text between the tags inside a function is passed over. What comes back does not depend on
 * how the text is cut into pieces. Not thread-safe.
 */
final class XmlCallScanner implements BlockScanner {

    private static final String FUNCTION = "<function=";
    private static final String FUNCTION_END = "</function>";
    private static final String PARAMETER = "<parameter=";
    private static final String PARAMETER_END = "</parameter>";
    private static final Pattern INTEGER = Pattern.compile("-?\\d+");

    private enum Place { BEFORE_FUNCTION, IN_FUNCTION, IN_PARAMETER, DONE }

    /** Each function's parameters by name (its schema's {@code properties}), for their types. */
    private final Map<String, JsonNode> properties;
    /** Text not yet read: a tag that may still be cut, or a value's tail that may begin its end. */
    private final StringBuilder pending = new StringBuilder();
    private final StringBuilder value = new StringBuilder();
    private Place place = Place.BEFORE_FUNCTION;
    private String function;
    private String parameter;
    private int parametersWritten;
    private int made;

    /** @param properties each tool's {@code parameters.properties} by the tool's name (absent: every value a string) */
    XmlCallScanner(Map<String, JsonNode> properties) {
        this.properties = properties;
    }

    @Override
    public int made() {
        return made;
    }

    @Override
    public List<CallScanner.Event> feed(String text) {
        List<CallScanner.Event> events = new ArrayList<>();
        if (place == Place.DONE) {
            return events;
        }
        pending.append(text);
        while (step(events)) {
            // each step reads one tag or one value's text
        }
        return events;
    }

    @Override
    public List<CallScanner.Event> finish() {
        List<CallScanner.Event> events = new ArrayList<>();
        if (place == Place.IN_PARAMETER) {
            value.append(pending);
            endParameter(events);
        }
        if (place == Place.IN_FUNCTION) {
            endFunction(events);
        }
        pending.setLength(0);
        place = Place.DONE;
        return events;
    }

    /** Reads what it can of {@link #pending}; false when it needs more text. */
    private boolean step(List<CallScanner.Event> events) {
        switch (place) {
            case BEFORE_FUNCTION -> {
                skipWhitespace();
                if (pending.isEmpty()) {
                    return false;
                }
                if (!startsWithOrMayBecome(FUNCTION)) {
                    place = Place.DONE; // not a function: no (further) call in this block
                    return false;
                }
                String name = tagValue(FUNCTION);
                if (name == null) {
                    return false;
                }
                function = name.strip();
                parametersWritten = 0;
                made++;
                place = Place.IN_FUNCTION;
                events.add(new CallScanner.Start(function));
                events.add(new CallScanner.Arguments("{"));
                return true;
            }
            case IN_FUNCTION -> {
                skipWhitespace();
                if (pending.isEmpty()) {
                    return false;
                }
                if (startsWith(FUNCTION_END)) {
                    pending.delete(0, FUNCTION_END.length());
                    endFunction(events);
                    place = Place.BEFORE_FUNCTION;
                    return true;
                }
                if (startsWithOrMayBecome(PARAMETER)) {
                    String name = tagValue(PARAMETER);
                    if (name == null) {
                        return false;
                    }
                    parameter = name.strip();
                    value.setLength(0);
                    place = Place.IN_PARAMETER;
                    return true;
                }
                if (startsWithOrMayBecome(FUNCTION_END)) {
                    return false;
                }
                pending.deleteCharAt(0); // text between the tags
                return true;
            }
            case IN_PARAMETER -> {
                int end = firstOf(PARAMETER_END, PARAMETER, FUNCTION_END);
                if (end < 0) {
                    int keep = Math.max(StreamedTags.partialTagLength(pending, PARAMETER_END),
                            Math.max(StreamedTags.partialTagLength(pending, PARAMETER),
                                    StreamedTags.partialTagLength(pending, FUNCTION_END)));
                    value.append(pending, 0, pending.length() - keep);
                    pending.delete(0, pending.length() - keep);
                    return false;
                }
                value.append(pending, 0, end);
                pending.delete(0, end);
                if (startsWith(PARAMETER_END)) {
                    pending.delete(0, PARAMETER_END.length());
                }
                endParameter(events);
                return true;
            }
            default -> {
                return false;
            }
        }
    }

    private void endParameter(List<CallScanner.Event> events) {
        String text = value.toString();
        if (text.startsWith("\n")) {
            text = text.substring(1);
        }
        if (text.endsWith("\n")) {
            text = text.substring(0, text.length() - 1);
        }
        String entry = Json.write(parameter) + ":" + Json.write(typed(text, schemaOf(parameter)));
        events.add(new CallScanner.Arguments(parametersWritten++ == 0 ? entry : "," + entry));
        value.setLength(0);
        place = Place.IN_FUNCTION;
    }

    private void endFunction(List<CallScanner.Event> events) {
        events.add(new CallScanner.Arguments("}"));
    }

    /** The schema of the current function's parameter {@code name}, or null. */
    private JsonNode schemaOf(String name) {
        JsonNode functionProperties = properties.get(function);
        return functionProperties == null ? null : functionProperties.get(name);
    }

    /** A value's text as the JSON value its schema's type reads it as. */
    static JsonNode typed(String text, JsonNode schema) {
        JsonNodeFactory nodes = JsonNodeFactory.instance;
        if (text.equalsIgnoreCase("null")) {
            return nodes.nullNode();
        }
        String type = typeOf(schema);
        String trimmed = text.strip();
        switch (type) {
            case "string", "str", "text", "varchar", "char", "enum" -> {
                return nodes.textNode(text);
            }
            case "integer", "int", "long", "short" -> {
                return INTEGER.matcher(trimmed).matches() ? nodes.numberNode(new BigInteger(trimmed)) : nodes.textNode(text);
            }
            case "number", "float", "double" -> {
                try {
                    BigDecimal number = new BigDecimal(trimmed);
                    return number.stripTrailingZeros().scale() <= 0
                            ? nodes.numberNode(number.toBigIntegerExact()) : nodes.numberNode(number);
                } catch (NumberFormatException | ArithmeticException notANumber) {
                    return nodes.textNode(text);
                }
            }
            case "boolean", "bool" -> {
                return nodes.booleanNode(trimmed.equalsIgnoreCase("true"));
            }
            default -> {
                try {
                    return Json.READER.readTree(text);
                } catch (JsonProcessingException notJson) {
                    return nodes.textNode(text);
                }
            }
        }
    }

    /**
     * A parameter schema's type, lower case: the first non-null of a list; without one, that of the
     * first alternative of {@code anyOf} or {@code oneOf} that has one other than null (pydantic's
     * {@code Optional[int]}); "json" (read as JSON where the text is JSON, else as text) for another
     * schema that gives none but holds values of some shape (a {@code $ref} to a model, an enum), and
     * "string" for a schema that says nothing.
     */
    private static String typeOf(JsonNode schema) {
        JsonNode type = schema == null ? null : schema.get("type");
        if (type != null && type.isArray()) {
            for (JsonNode each : type) {
                if (each.isTextual() && !each.textValue().equals("null")) {
                    return each.textValue().toLowerCase(Locale.ROOT);
                }
            }
        }
        if (type != null && type.isTextual()) {
            return type.textValue().strip().toLowerCase(Locale.ROOT);
        }
        if (schema == null || !schema.isObject()) {
            return "string";
        }
        for (String union : List.of("anyOf", "oneOf")) {
            for (JsonNode alternative : schema.path(union)) {
                String alternativeType = alternative.has("type") ? typeOf(alternative) : "json";
                if (!alternativeType.equals("null")) {
                    return alternativeType;
                }
            }
        }
        for (String shape : List.of("$ref", "allOf", "enum", "const", "properties", "items", "prefixItems")) {
            if (schema.has(shape)) {
                return "json";
            }
        }
        return "string";
    }

    private void skipWhitespace() {
        int i = 0;
        while (i < pending.length() && Character.isWhitespace(pending.charAt(i))) {
            i++;
        }
        pending.delete(0, i);
    }

    private boolean startsWith(String tag) {
        return pending.length() >= tag.length() && pending.substring(0, tag.length()).equals(tag);
    }

    /** Whether what is pending begins with {@code tag}, or is a beginning of it that more text may finish. */
    private boolean startsWithOrMayBecome(String tag) {
        int length = Math.min(tag.length(), pending.length());
        return pending.substring(0, length).equals(tag.substring(0, length));
    }

    /** The text between {@code tag} and the next '>', the tag and '>' read; null while the '>' has not come. */
    private String tagValue(String tag) {
        if (pending.length() < tag.length()) {
            return null;
        }
        int close = pending.indexOf(">", tag.length());
        if (close < 0) {
            return null;
        }
        String inside = pending.substring(tag.length(), close);
        pending.delete(0, close + 1);
        return inside;
    }

    /** Where the first of {@code tags} begins in what is pending, or -1. */
    private int firstOf(String... tags) {
        int first = -1;
        for (String tag : tags) {
            int at = pending.indexOf(tag);
            if (at >= 0 && (first < 0 || at < first)) {
                first = at;
            }
        }
        return first;
    }
}
