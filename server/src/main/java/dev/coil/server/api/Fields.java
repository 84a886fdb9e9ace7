package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Typed reads of a request's JSON fields. A field that is absent or null takes its default; one of
 * the wrong type or out of range is a 400 naming it ("max_tokens must be an integer >= 0, got -1").
 */
final class Fields {

    private final ObjectNode node;

    Fields(ObjectNode node) {
        this.node = node;
    }

    /** Present and not null. */
    boolean has(String name) {
        JsonNode value = node.get(name);
        return value != null && !value.isNull();
    }

    JsonNode get(String name) {
        JsonNode value = node.get(name);
        return value == null || value.isNull() ? null : value;
    }

    /** An integer in [min, max], or null when absent. Whole-valued numbers such as 5.0 count as integers. */
    Integer integer(String name, long min, long max) {
        JsonNode value = get(name);
        if (value == null) {
            return null;
        }
        return (int) integerValue(name, value, min, max);
    }

    int integer(String name, long min, long max, int defaultValue) {
        Integer value = integer(name, min, max);
        return value == null ? defaultValue : value;
    }

    Long longInteger(String name) {
        JsonNode value = get(name);
        return value == null ? null : integerValue(name, value, Long.MIN_VALUE, Long.MAX_VALUE);
    }

    /** A finite number, or null when absent. */
    Double number(String name) {
        JsonNode value = get(name);
        if (value == null) {
            return null;
        }
        if (!value.isNumber()) {
            throw ApiException.invalid(name, name + " must be a number, got " + typeName(value));
        }
        double number = value.doubleValue();
        if (!Double.isFinite(number)) {
            throw ApiException.invalid(name, name + " must be a finite number, got " + value.asText());
        }
        return number;
    }

    double number(String name, double defaultValue) {
        Double value = number(name);
        return value == null ? defaultValue : value;
    }

    boolean bool(String name, boolean defaultValue) {
        JsonNode value = get(name);
        if (value == null) {
            return defaultValue;
        }
        if (!value.isBoolean()) {
            throw ApiException.invalid(name, name + " must be true or false, got " + typeName(value));
        }
        return value.booleanValue();
    }

    String string(String name) {
        JsonNode value = get(name);
        if (value == null) {
            return null;
        }
        if (!value.isTextual()) {
            throw ApiException.invalid(name, name + " must be a string, got " + typeName(value));
        }
        return value.textValue();
    }

    /** A string or an array of strings (OpenAI's {@code stop}); empty when absent. */
    List<String> stringOrStrings(String name) {
        JsonNode value = get(name);
        List<String> out = new ArrayList<>();
        if (value == null) {
            return out;
        }
        if (value.isTextual()) {
            out.add(value.textValue());
            return out;
        }
        if (!value.isArray()) {
            throw ApiException.invalid(name, name + " must be a string or an array of strings, got " + typeName(value));
        }
        for (JsonNode item : value) {
            if (!item.isTextual()) {
                throw ApiException.invalid(name, name + " must be a string or an array of strings; it holds "
                        + typeName(item));
            }
            out.add(item.textValue());
        }
        return out;
    }

    /** An array of integers in [min, max]; empty when absent. */
    List<Integer> integers(String name, long min, long max) {
        JsonNode value = get(name);
        List<Integer> out = new ArrayList<>();
        if (value == null) {
            return out;
        }
        if (!value.isArray()) {
            throw ApiException.invalid(name, name + " must be an array of integers, got " + typeName(value));
        }
        for (int i = 0; i < value.size(); i++) {
            // The message names the element (stop_token_ids[2]); the error's param stays the field.
            try {
                out.add((int) integerValue(name + "[" + i + "]", value.get(i), min, max));
            } catch (ApiException e) {
                throw ApiException.invalid(name, e.getMessage());
            }
        }
        return out;
    }

    /**
     * A copy of the request's fields but {@code names}: what another API's request passes on to the
     * chat request it stands for (vLLM's sampling extras), its own fields left to be read by name.
     */
    ObjectNode copyWithout(Set<String> names) {
        ObjectNode copy = Json.object();
        node.properties().forEach(field -> {
            if (!names.contains(field.getKey())) {
                copy.set(field.getKey(), field.getValue());
            }
        });
        return copy;
    }

    ObjectNode object(String name) {
        JsonNode value = get(name);
        if (value == null) {
            return null;
        }
        if (!(value instanceof ObjectNode object)) {
            throw ApiException.invalid(name, name + " must be an object, got " + typeName(value));
        }
        return object;
    }

    /**
     * OpenAI's logit_bias shape: an object from token ids (as JSON keys are strings, "50256") to
     * numbers in [-maxBias, maxBias]; empty when absent.
     *
     * @param vocabSize ids must lie in [0, vocabSize)
     */
    Map<Integer, Float> tokenBiases(String name, int vocabSize, float maxBias) {
        ObjectNode object = object(name);
        Map<Integer, Float> biases = new TreeMap<>();
        if (object == null) {
            return biases;
        }
        for (Map.Entry<String, JsonNode> entry : object.properties()) {
            String key = entry.getKey();
            long id;
            try {
                id = Long.parseLong(key.strip());
            } catch (NumberFormatException e) {
                throw ApiException.invalid(name, name + " keys must be token ids, got \"" + key + "\"");
            }
            if (id < 0 || id >= vocabSize) {
                throw ApiException.invalid(name, name + ": token id " + key.strip() + " is outside the vocabulary [0, "
                        + vocabSize + ")");
            }
            JsonNode value = entry.getValue();
            if (value == null || !value.isNumber() || !(Math.abs(value.doubleValue()) <= maxBias)) {
                throw ApiException.invalid(name, name + " values must be numbers in [" + (int) -maxBias + ", "
                        + (int) maxBias + "], got " + describe(value) + " for token " + id);
            }
            biases.put((int) id, value.floatValue());
        }
        return biases;
    }

    static long integerValue(String name, JsonNode value, long min, long max) {
        boolean integral = value.isIntegralNumber()
                || value.isFloatingPointNumber() && Double.isFinite(value.doubleValue())
                        && value.doubleValue() == Math.rint(value.doubleValue());
        if (!integral) {
            throw ApiException.invalid(name, name + " must be an integer, got " + describe(value));
        }
        // A value past a long (canConvertToLong is false) or past max is out of range above: only
        // the whole range says what fits. Below min, the lower bound is the news.
        boolean above = !value.canConvertToLong() ? value.bigIntegerValue().signum() > 0 : value.longValue() > max;
        boolean below = !value.canConvertToLong() ? !above : value.longValue() < min;
        if (above || below) {
            throw ApiException.invalid(name, name + " must be an integer " + range(min, max, above) + ", got "
                    + value.asText());
        }
        return value.longValue();
    }

    /** The range as the message states it: ">= min" for a value below it where max is just its type's end. */
    private static String range(long min, long max, boolean above) {
        if (!above && (max == Long.MAX_VALUE || max == Integer.MAX_VALUE)) {
            return ">= " + min;
        }
        return "in [" + min + ", " + max + "]";
    }

    private static String describe(JsonNode value) {
        return value.isNumber() ? value.asText() : typeName(value);
    }

    /** The JSON type of a value, as an error message names it. */
    /**
     * The string field {@code field} of an object inside the request ({@code where}: its place, as
     * "messages[2].content[0]"), or a 400 naming {@code param} and the place.
     */
    static String stringIn(JsonNode object, String field, String param, String where) {
        JsonNode value = object.get(field);
        if (value == null || !value.isTextual()) {
            throw ApiException.invalid(param, where + "." + field + " must be a string");
        }
        return value.textValue();
    }

    static String typeName(JsonNode value) {
        if (value == null || value.isNull()) {
            return "null";
        }
        return switch (value.getNodeType()) {
            case STRING -> "a string";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case ARRAY -> "an array";
            case OBJECT -> "an object";
            default -> value.getNodeType().toString().toLowerCase(Locale.ROOT);
        };
    }
}
