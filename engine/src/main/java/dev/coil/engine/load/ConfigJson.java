package dev.coil.engine.load;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.DoubleNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Reads the JSON files of a model folder (config.json, generation_config.json, ...) and reads keys
 * out of them with defaults or clear errors.
 *
 * <p>transformers writes infinite and NaN floats in two ways, both accepted here and read back as
 * doubles: the bare tokens {@code Infinity}, {@code -Infinity}, {@code NaN} (Python's json module),
 * and the tagged object {@code {"__float__": "Infinity"}} (newer releases, to stay valid JSON), for
 * example {@code "time_step_limit": [0.0, {"__float__": "Infinity"}]}.
 */
public final class ConfigJson {

    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    private static final String FLOAT_TAG = "__float__";

    private ConfigJson() {}

    /** The file's top-level object, tagged floats replaced by numbers. */
    public static ObjectNode read(Path file) {
        String name = file.getFileName().toString();
        try {
            return parse(Files.readString(file), name);
        } catch (NoSuchFileException e) {
            throw new CheckpointException(file + " does not exist.", e);
        } catch (IOException e) {
            throw new CheckpointException(file + " cannot be read (" + e.getMessage() + ").", e);
        }
    }

    /** Parses JSON text; {@code fileName} only names the source in errors. */
    public static ObjectNode parse(String json, String fileName) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JacksonException e) {
            JsonLocation where = e.getLocation();
            String position = where == null ? "" : " at line " + where.getLineNr() + ", column " + where.getColumnNr();
            throw new CheckpointException(fileName + ": malformed JSON" + position + " (" + e.getOriginalMessage() + ").", e);
        }
        if (root == null || !root.isObject()) {
            String found = root == null || root.isMissingNode() ? "empty" : "a JSON " + root.getNodeType().name().toLowerCase();
            throw new CheckpointException(fileName + " is " + found + "; expected a JSON object.");
        }
        return (ObjectNode) untagFloats(root, fileName);
    }

    /** Replaces every {"__float__": "Infinity" | "-Infinity" | "NaN"} below {@code node} by a number. */
    private static JsonNode untagFloats(JsonNode node, String fileName) {
        if (node instanceof ObjectNode object) {
            JsonNode tag = object.get(FLOAT_TAG);
            if (tag != null && object.size() == 1) {
                return DoubleNode.valueOf(taggedFloat(tag, fileName));
            }
            List<Map.Entry<String, JsonNode>> entries = new ArrayList<>(object.properties());
            for (Map.Entry<String, JsonNode> entry : entries) {
                object.set(entry.getKey(), untagFloats(entry.getValue(), fileName));
            }
        } else if (node instanceof ArrayNode array) {
            for (int i = 0; i < array.size(); i++) {
                array.set(i, untagFloats(array.get(i), fileName));
            }
        }
        return node;
    }

    private static double taggedFloat(JsonNode tag, String fileName) {
        return switch (tag.isTextual() ? tag.textValue() : "") {
            case "Infinity" -> Double.POSITIVE_INFINITY;
            case "-Infinity" -> Double.NEGATIVE_INFINITY;
            case "NaN" -> Double.NaN;
            default -> throw new CheckpointException(fileName + ": {\"__float__\": " + tag
                    + "} is not a float; expected \"Infinity\", \"-Infinity\" or \"NaN\".");
        };
    }

    /** True when {@code key} is present and not null. */
    public static boolean has(JsonNode node, String key) {
        JsonNode value = node.get(key);
        return value != null && !value.isNull();
    }

    public static int getInt(JsonNode node, String key, int defaultValue) {
        return has(node, key) ? asInt(node.get(key), key, null) : defaultValue;
    }

    public static long getLong(JsonNode node, String key, long defaultValue) {
        return has(node, key) ? asLong(node.get(key), key, null) : defaultValue;
    }

    public static double getDouble(JsonNode node, String key, double defaultValue) {
        return has(node, key) ? asDouble(node.get(key), key, null) : defaultValue;
    }

    public static boolean getBoolean(JsonNode node, String key, boolean defaultValue) {
        return has(node, key) ? asBoolean(node.get(key), key, null) : defaultValue;
    }

    public static String getString(JsonNode node, String key, String defaultValue) {
        return has(node, key) ? asString(node.get(key), key, null) : defaultValue;
    }

    /** The object under {@code key} (e.g. "rope_scaling"), or null when absent. */
    public static ObjectNode getObject(JsonNode node, String key) {
        if (!has(node, key)) {
            return null;
        }
        if (node.get(key) instanceof ObjectNode object) {
            return object;
        }
        throw wrongType(node.get(key), key, null, "an object");
    }

    /** An int or a list of ints (e.g. eos_token_id); empty when absent. */
    public static int[] getInts(JsonNode node, String key) {
        if (!has(node, key)) {
            return new int[0];
        }
        JsonNode value = node.get(key);
        if (!value.isArray()) {
            return new int[] {asInt(value, key, null)};
        }
        int[] values = new int[value.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = asInt(value.get(i), key, null);
        }
        return values;
    }

    /** A list of numbers (e.g. time_step_limit), or {@code defaultValue} when absent. */
    public static double[] getDoubles(JsonNode node, String key, double[] defaultValue) {
        if (!has(node, key)) {
            return defaultValue;
        }
        JsonNode value = node.get(key);
        if (!value.isArray()) {
            throw wrongType(value, key, null, "a list of numbers");
        }
        double[] values = new double[value.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = asDouble(value.get(i), key, null);
        }
        return values;
    }

    public static int requireInt(JsonNode node, String key, String file) {
        return asInt(require(node, key, file), key, file);
    }

    public static long requireLong(JsonNode node, String key, String file) {
        return asLong(require(node, key, file), key, file);
    }

    public static double requireDouble(JsonNode node, String key, String file) {
        return asDouble(require(node, key, file), key, file);
    }

    public static String requireString(JsonNode node, String key, String file) {
        return asString(require(node, key, file), key, file);
    }

    private static JsonNode require(JsonNode node, String key, String file) {
        if (!has(node, key)) {
            throw new CheckpointException(file + ": key '" + key + "' is missing.");
        }
        return node.get(key);
    }

    private static int asInt(JsonNode value, String key, String file) {
        long whole = asLong(value, key, file);
        if (whole != (int) whole) {
            throw wrongType(value, key, file, "an integer that fits in 32 bits");
        }
        return (int) whole;
    }

    /** Integers, and floats with no fraction (some configs write 4096.0). */
    private static long asLong(JsonNode value, String key, String file) {
        if (value.isIntegralNumber() && value.canConvertToLong()) {
            return value.longValue();
        }
        if (value.isFloatingPointNumber() && value.doubleValue() == Math.rint(value.doubleValue())
                && Math.abs(value.doubleValue()) < 0x1p53) {
            return (long) value.doubleValue();
        }
        throw wrongType(value, key, file, "an integer");
    }

    private static double asDouble(JsonNode value, String key, String file) {
        if (!value.isNumber()) {
            throw wrongType(value, key, file, "a number");
        }
        return value.doubleValue();
    }

    private static boolean asBoolean(JsonNode value, String key, String file) {
        if (!value.isBoolean()) {
            throw wrongType(value, key, file, "true or false");
        }
        return value.booleanValue();
    }

    private static String asString(JsonNode value, String key, String file) {
        if (!value.isTextual()) {
            throw wrongType(value, key, file, "a string");
        }
        return value.textValue();
    }

    private static CheckpointException wrongType(JsonNode value, String key, String file, String expected) {
        String where = file == null ? "Key '" + key + "'" : file + ": key '" + key + "'";
        return new CheckpointException(where + " holds " + value + "; expected " + expected + ".");
    }
}
