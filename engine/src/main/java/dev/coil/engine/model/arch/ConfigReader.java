package dev.coil.engine.model.arch;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.load.ConfigJson;
import java.util.ArrayList;
import java.util.List;

/**
 * Typed reads of config.json keys with the defaults transformers uses, and load-time errors that
 * name the key. Several keys have aliases across transformers versions; the first present wins.
 */
final class ConfigReader {

    private final JsonNode root;
    private final String file;

    ConfigReader(JsonNode root, String file) {
        this.root = root;
        this.file = file;
    }

    String file() {
        return file;
    }

    boolean has(String key) {
        return ConfigJson.has(root, key);
    }

    JsonNode node(String key) {
        return root.get(key);
    }

    private JsonNode first(String... keys) {
        for (String key : keys) {
            if (has(key)) {
                return root.get(key);
            }
        }
        return null;
    }

    int requireInt(String... keys) {
        JsonNode node = first(keys);
        if (node == null) {
            throw new CheckpointException(file + ": key '" + keys[0] + "' is missing; it is required for "
                    + architectureName() + ".");
        }
        return asInt(node, keys[0]);
    }

    int getInt(int fallback, String... keys) {
        JsonNode node = first(keys);
        return node == null ? fallback : asInt(node, keys[0]);
    }

    double getDouble(double fallback, String... keys) {
        JsonNode node = first(keys);
        if (node == null) {
            return fallback;
        }
        if (!node.isNumber()) {
            throw new CheckpointException(file + ": key '" + keys[0] + "' must be a number, found " + node + ".");
        }
        return node.asDouble();
    }

    boolean getBoolean(boolean fallback, String... keys) {
        JsonNode node = first(keys);
        if (node == null) {
            return fallback;
        }
        if (!node.isBoolean()) {
            throw new CheckpointException(file + ": key '" + keys[0] + "' must be true or false, found " + node + ".");
        }
        return node.asBoolean();
    }

    String getString(String fallback, String... keys) {
        JsonNode node = first(keys);
        return node == null ? fallback : node.asText();
    }

    /** A list of strings, or null when absent. */
    List<String> getStrings(String key) {
        JsonNode node = first(key);
        if (node == null) {
            return null;
        }
        if (!node.isArray()) {
            throw new CheckpointException(file + ": key '" + key + "' must be a list, found " + node + ".");
        }
        List<String> values = new ArrayList<>();
        node.forEach(item -> values.add(item.asText()));
        return values;
    }

    /** A list of ints, or null when absent. */
    List<Integer> getInts(String key) {
        JsonNode node = first(key);
        if (node == null) {
            return null;
        }
        if (!node.isArray()) {
            throw new CheckpointException(file + ": key '" + key + "' must be a list, found " + node + ".");
        }
        List<Integer> values = new ArrayList<>();
        node.forEach(item -> values.add(asInt(item, key)));
        return values;
    }

    /** time_step_limit as [min, max]; absent → (0, +inf). Infinity is already a double here. */
    float[] timeStepLimit() {
        JsonNode node = first("time_step_limit");
        if (node == null) {
            return new float[] {0f, Float.POSITIVE_INFINITY};
        }
        if (!node.isArray() || node.size() != 2) {
            throw new CheckpointException(file + ": key 'time_step_limit' must be a pair [min, max], found " + node + ".");
        }
        return new float[] {(float) node.get(0).asDouble(), (float) node.get(1).asDouble()};
    }

    /** rope_parameters.rope_theta (5.x), else rope_theta (4.x), else 10000. */
    double ropeTheta() {
        JsonNode parameters = root.get("rope_parameters");
        if (parameters != null && parameters.has("rope_theta")) {
            return parameters.get("rope_theta").asDouble();
        }
        return getDouble(10000.0, "rope_theta");
    }

    /** rope_parameters.partial_rotary_factor, else partial_rotary_factor, else the fallback. */
    double partialRotaryFactor(double fallback) {
        JsonNode parameters = root.get("rope_parameters");
        if (parameters != null && parameters.has("partial_rotary_factor")) {
            return parameters.get("partial_rotary_factor").asDouble();
        }
        return getDouble(fallback, "partial_rotary_factor");
    }

    /** Fails at load for activations Coil does not implement (all released checkpoints use silu). */
    void requireActivation(String expected, String... keys) {
        String value = getString(expected, keys);
        if (!value.equals(expected)) {
            throw new CheckpointException(file + ": " + keys[0] + " '" + value + "' is not supported for "
                    + architectureName() + "; Coil implements '" + expected + "'.");
        }
    }

    private String architectureName() {
        JsonNode architectures = root.get("architectures");
        if (architectures != null && architectures.isArray() && !architectures.isEmpty()) {
            return architectures.get(0).asText();
        }
        return getString("this model", "model_type");
    }

    private int asInt(JsonNode node, String key) {
        if (!node.isIntegralNumber() && !(node.isNumber() && node.asDouble() == Math.rint(node.asDouble()))) {
            throw new CheckpointException(file + ": key '" + key + "' must be an integer, found " + node + ".");
        }
        return node.asInt();
    }
}
