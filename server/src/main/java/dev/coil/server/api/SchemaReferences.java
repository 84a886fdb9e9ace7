package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;

/**
 * A JSON schema set inside a larger one: its references within itself ({@code "#"}, {@code
 * "#/$defs/Address"}, as pydantic writes a nested model) are made to point where it now stands, so
 * that they still name its own parts rather than the larger document's.
 *
 * <p>Only the keywords that hold schemas are walked ({@code properties}, {@code items}, {@code anyOf},
 * {@code $defs}, ...): a property named {@code $ref} or a {@code const} value holding one is left as
 * it is.
 */
final class SchemaReferences {

    /** Keywords whose value is one schema. */
    private static final Set<String> SCHEMA = Set.of("items", "additionalProperties", "propertyNames", "not",
            "if", "then", "else", "contains", "unevaluatedItems", "unevaluatedProperties", "additionalItems");
    /** Keywords whose value is an array of schemas. */
    private static final Set<String> SCHEMA_LIST = Set.of("prefixItems", "anyOf", "oneOf", "allOf");
    /** Keywords whose value maps names to schemas. */
    private static final Set<String> SCHEMA_MAP = Set.of("properties", "patternProperties", "$defs",
            "definitions", "dependentSchemas");

    private SchemaReferences() {
    }

    /**
     * A copy of {@code schema} to be set at {@code pointer} (a JSON pointer, "/items/anyOf/0/...") of
     * another document, its references that start with {@code #} made to start with {@code #pointer}.
     */
    static JsonNode placedAt(JsonNode schema, String pointer) {
        JsonNode copy = schema.deepCopy();
        rewrite(copy, pointer);
        return copy;
    }

    private static void rewrite(JsonNode schema, String pointer) {
        if (!(schema instanceof ObjectNode object)) {
            return; // true, false, or not a schema: nothing refers
        }
        JsonNode reference = object.get("$ref");
        if (reference != null && reference.isTextual() && reference.textValue().startsWith("#")) {
            object.set("$ref", TextNode.valueOf("#" + pointer + reference.textValue().substring(1)));
        }
        for (Iterator<Map.Entry<String, JsonNode>> fields = object.fields(); fields.hasNext(); ) {
            Map.Entry<String, JsonNode> field = fields.next();
            JsonNode value = field.getValue();
            if (SCHEMA.contains(field.getKey())) {
                rewrite(value, pointer);
            } else if (SCHEMA_LIST.contains(field.getKey()) && value instanceof ArrayNode list) {
                list.forEach(element -> rewrite(element, pointer));
            } else if (SCHEMA_MAP.contains(field.getKey()) && value instanceof ObjectNode map) {
                map.forEach(element -> rewrite(element, pointer));
            }
        }
    }
}
