package dev.coil.engine.runner;

import com.fasterxml.jackson.core.JsonPointer;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads a JSON schema into the {@link ValueRule}s the output is held to. It takes the part of JSON
 * Schema (2020-12) that structured outputs use, as OpenAI's strict mode and vLLM's xgrammar backend
 * read it:
 * <ul>
 * <li>{@code type} (one or a list), {@code enum}, {@code const}, {@code anyOf}, {@code oneOf} (as
 *     anyOf; OpenAPI's {@code discriminator} beside it, as pydantic writes a tagged union, is a hint
 *     read past: each alternative's {@code const} of the tag holds it), an {@code allOf} of one schema
 *     or of object schemas (OpenAPI's inheritance: see {@link #mergedObjects}), and {@code $ref} to a place in the same document
 *     ({@code #}, {@code #/$defs/Name}, recursion included);</li>
 * <li>objects: {@code properties}, spelled in their listed order, {@code required},
 *     {@code additionalProperties} (false when absent beside {@code properties}, as strict mode has it;
 *     additional keys come after the listed ones), {@code minProperties} and {@code maxProperties}
 *     (a key that would leave the object unable to meet them is refused where it would start),
 *     {@code propertyNames} (each key spelled as that schema's string; a listed property it refuses is
 *     left out, or refused when required), {@code patternProperties} (the additional keys are those its
 *     patterns match whole, each with the patterns' one schema: pydantic's dict of constrained keys;
 *     patterns of different schemas, a listed name a pattern matches, or other additional keys beside
 *     them are refused);</li>
 * <li>arrays: {@code items}, {@code prefixItems} (then {@code items} for the rest, {@code false} for
 *     none), {@code minItems}, {@code maxItems}, {@code uniqueItems} (for items of enum, const or
 *     boolean: each value once; for string items each string once, and for number items (integers or
 *     not) each value once, within their bounds, 1 and 1.0 being one); strings: {@code minLength},
 *     {@code maxLength}, {@code pattern} (matched whole: see {@link RegexSyntax}); numbers:
 *     {@code minimum}, {@code maximum}, {@code exclusiveMinimum}, {@code exclusiveMaximum},
 *     {@code multipleOf} (a bounded number that need not be an integer is written without an
 *     exponent; a digit after which it could not end a multiple within its bounds is refused).</li>
 * </ul>
 * Annotations ({@code title}, {@code description}, {@code default}, ...) are read past; {@code format}
 * holds a string to its pattern where {@link StringFormats} knows it (beside a {@code pattern}, the
 * pattern alone), and is read past otherwise, as JSON Schema has it by default. Any other keyword is refused by name, rather than
 * left unenforced.
 */
final class JsonSchemaCompiler {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Keywords that say nothing about which values are valid. */
    private static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "$schema",
            "$id", "$comment", "deprecated", "readOnly", "writeOnly", "format", "contentMediaType", "contentEncoding",
            "$defs", "definitions", "discriminator");
    private static final Set<String> OBJECT_KEYWORDS = Set.of("properties", "required", "additionalProperties",
            "minProperties", "maxProperties", "propertyNames", "patternProperties");
    private static final Set<String> ARRAY_KEYWORDS = Set.of("items", "prefixItems", "minItems", "maxItems",
            "uniqueItems");
    private static final Set<String> STRING_KEYWORDS = Set.of("minLength", "maxLength", "pattern");
    private static final Set<String> NUMBER_KEYWORDS = Set.of("minimum", "maximum", "exclusiveMinimum",
            "exclusiveMaximum", "multipleOf");

    private final JsonNode document;
    private final Map<String, ValueRule.Reference> references = new HashMap<>();

    private JsonSchemaCompiler(JsonNode document) {
        this.document = document;
    }

    /** The rule of the whole document; IllegalArgumentException names what it cannot hold to. */
    static ValueRule compile(JsonNode schema) {
        JsonSchemaCompiler compiler = new JsonSchemaCompiler(schema);
        ValueRule root = compiler.compile(schema, "#");
        new StartCheck().check(root);
        return root;
    }

    private ValueRule compile(JsonNode node, String path) {
        if (node.isBoolean()) {
            if (!node.booleanValue()) {
                throw invalid(path, "the schema false allows no value");
            }
            return ValueRule.AnyValue.INSTANCE;
        }
        if (!node.isObject()) {
            throw invalid(path, "a schema must be an object or a boolean");
        }
        Set<String> keywords = new LinkedHashSet<>();
        node.fieldNames().forEachRemaining(name -> {
            // uniqueItems false asks nothing, whoever spells it out.
            boolean noAssertion = name.equals("uniqueItems") && node.get(name).isBoolean()
                    && !node.get(name).asBoolean();
            if (!ANNOTATIONS.contains(name) && !noAssertion) {
                keywords.add(name);
            }
        });
        if (keywords.contains("$ref")) {
            onlyBeside(keywords, path, "$ref");
            return reference(text(node.get("$ref"), path + "/$ref"), path);
        }
        for (String union : List.of("anyOf", "oneOf")) {
            if (keywords.contains(union)) {
                onlyBeside(keywords, path, union);
                List<ValueRule> alternatives = new ArrayList<>();
                JsonNode list = nonEmptyArray(node.get(union), path + "/" + union);
                for (int i = 0; i < list.size(); i++) {
                    alternatives.add(compile(list.get(i), path + "/" + union + "/" + i));
                }
                return alternatives.size() == 1 ? alternatives.getFirst() : new ValueRule.UnionRule(alternatives);
            }
        }
        if (keywords.contains("allOf")) {
            onlyBeside(keywords, path, "allOf");
            JsonNode list = nonEmptyArray(node.get("allOf"), path + "/allOf");
            if (list.size() == 1) {
                return compile(list.get(0), path + "/allOf/0");
            }
            return compile(mergedObjects(list, path + "/allOf"), path + "/allOf");
        }
        List<String> types = types(node, keywords, path);
        if (keywords.contains("enum") || keywords.contains("const")) {
            return literals(node, keywords, types, path);
        }
        if (types == null) {
            if (!keywords.isEmpty()) {
                throw invalid(path, "give the schema a type for " + quoted(keywords.iterator().next()));
            }
            return ValueRule.AnyValue.INSTANCE;
        }
        Set<String> used = new HashSet<>(Set.of("type"));
        List<ValueRule> rules = new ArrayList<>();
        for (String type : types) {
            switch (type) {
                case "object" -> {
                    rules.add(object(node, path));
                    used.addAll(OBJECT_KEYWORDS);
                }
                case "array" -> {
                    rules.add(array(node, path));
                    used.addAll(ARRAY_KEYWORDS);
                }
                case "string" -> {
                    int min = count(node, "minLength", 0, path);
                    int max = count(node, "maxLength", Integer.MAX_VALUE, path);
                    if (min > max) {
                        throw invalid(path, "minLength " + min + " is more than maxLength " + max);
                    }
                    rules.add(string(node, min, max, path));
                    used.addAll(STRING_KEYWORDS);
                }
                case "number" -> {
                    rules.add(number(node, path));
                    used.addAll(NUMBER_KEYWORDS);
                }
                case "integer" -> {
                    rules.add(integer(node, path));
                    used.addAll(NUMBER_KEYWORDS);
                }
                case "boolean" -> rules.add(ValueRule.LiteralRule.BOOLEAN);
                case "null" -> rules.add(ValueRule.LiteralRule.NULL);
                default -> throw invalid(path + "/type", "unknown type " + quoted(type));
            }
        }
        for (String keyword : keywords) {
            if (!used.contains(keyword)) {
                throw invalid(path, "the keyword " + quoted(keyword) + " is not supported"
                        + (isKnownElsewhere(keyword) ? " for type " + String.join(" or ", types) : ""));
            }
        }
        return rules.size() == 1 ? rules.getFirst() : new ValueRule.UnionRule(rules);
    }

    /**
     * A string of {@code min} to {@code max} code points, matching the node's pattern whole if it has
     * one, else the pattern of its format where {@link StringFormats} knows it.
     */
    private static ValueRule string(JsonNode node, int min, int max, String path) {
        String source = node.has("pattern") ? "pattern" : "format";
        JsonNode given = node.get(source);
        String pattern = source.equals("pattern") ? text(given, path + "/pattern")
                : given != null && given.isTextual() ? StringFormats.pattern(given.textValue()) : null;
        if (pattern == null) {
            return min == 0 && max == Integer.MAX_VALUE ? ValueRule.StringRule.ANY
                    : new ValueRule.StringRule(min, max, null);
        }
        try {
            return new ValueRule.StringRule(min, max, RegexAutomaton.compile(pattern, min, max));
        } catch (IllegalArgumentException e) {
            throw invalid(path + "/" + source, e.getMessage());
        }
    }

    private static boolean isKnownElsewhere(String keyword) {
        return OBJECT_KEYWORDS.contains(keyword) || ARRAY_KEYWORDS.contains(keyword)
                || STRING_KEYWORDS.contains(keyword) || NUMBER_KEYWORDS.contains(keyword);
    }

    /** The node's types, in order, or null when it names none and says nothing that implies one. */
    private static List<String> types(JsonNode node, Set<String> keywords, String path) {
        JsonNode type = node.get("type");
        if (type == null) {
            if (keywords.stream().anyMatch(OBJECT_KEYWORDS::contains)) {
                return List.of("object");
            }
            if (keywords.stream().anyMatch(ARRAY_KEYWORDS::contains)) {
                return List.of("array");
            }
            if (keywords.stream().anyMatch(STRING_KEYWORDS::contains)) {
                return List.of("string");
            }
            return null;
        }
        if (type.isTextual()) {
            return List.of(type.textValue());
        }
        List<String> types = new ArrayList<>();
        for (JsonNode element : nonEmptyArray(type, path + "/type")) {
            String name = text(element, path + "/type");
            if (!types.contains(name)) {
                types.add(name);
            }
        }
        return types;
    }

    private ValueRule object(JsonNode node, String path) {
        JsonNode properties = node.get("properties");
        List<String> required = new ArrayList<>();
        JsonNode requiredNode = node.get("required");
        if (requiredNode != null) {
            if (!requiredNode.isArray()) {
                throw invalid(path + "/required", "required must be an array of names");
            }
            for (JsonNode name : requiredNode) {
                required.add(text(name, path + "/required"));
            }
        }
        List<ValueRule.Property> listed = new ArrayList<>();
        if (properties != null) {
            if (!properties.isObject()) {
                throw invalid(path + "/properties", "properties must be an object of schemas");
            }
            properties.fields().forEachRemaining(field -> listed.add(new ValueRule.Property(field.getKey(),
                    keyText(field.getKey()),
                    compile(field.getValue(), path + "/properties/" + escapePointer(field.getKey())),
                    required.contains(field.getKey()))));
        }
        for (String name : required) {
            if (listed.stream().noneMatch(property -> property.name().equals(name))) {
                throw invalid(path + "/required", "required names " + quoted(name)
                        + ", which properties does not define");
            }
        }
        JsonNode additional = node.get("additionalProperties");
        ValueRule additionalRule;
        if (additional == null) {
            additionalRule = properties == null ? ValueRule.AnyValue.INSTANCE : null;
        } else if (additional.isBoolean() && !additional.booleanValue()) {
            additionalRule = null;
        } else {
            additionalRule = compile(additional, path + "/additionalProperties");
        }
        int min = count(node, "minProperties", 0, path);
        int max = count(node, "maxProperties", Integer.MAX_VALUE, path);
        if (min > max) {
            throw invalid(path, "minProperties " + min + " is more than maxProperties " + max);
        }
        JsonNode patterns = node.get("patternProperties");
        boolean byPatterns = patterns != null && (!patterns.isObject() || !patterns.isEmpty());
        ValueRule names;
        if (byPatterns) {
            if (node.has("propertyNames")) {
                throw invalid(path, "patternProperties beside propertyNames is not supported");
            }
            if (additional != null && !(additional.isBoolean() && !additional.booleanValue())) {
                throw invalid(path, "additionalProperties beside patternProperties is not supported"
                        + " (the keys its patterns match are the only additional ones)");
            }
            names = patternNames(patterns, path + "/patternProperties");
            String first = patterns.fieldNames().next();
            additionalRule = compile(patterns.get(first), path + "/patternProperties/" + escapePointer(first));
        } else {
            names = propertyNames(node.get("propertyNames"), path + "/propertyNames");
        }
        if (names != null) {
            for (ValueRule.Property property : List.copyOf(listed)) {
                GrammarState spelled = GrammarState.start(names).feedAll("\"" + property.keyText() + "\"");
                boolean named = spelled != null && spelled.done();
                if (byPatterns && named) {
                    // A listed property a pattern matches would be held to both schemas: refused, not half kept.
                    throw invalid(path, "the property " + quoted(property.name())
                            + " matches a pattern of patternProperties, which is not supported");
                }
                if (!byPatterns && !named) {
                    // A listed property whose name propertyNames refuses cannot be written: it must not be required.
                    if (property.required()) {
                        throw invalid(path, "the required property " + quoted(property.name())
                                + " is not a name propertyNames allows");
                    }
                    listed.remove(property);
                }
            }
            // An additional key never spells a listed property's name: the names lose those, so that no
            // key is begun that could only end as one.
            if (names instanceof ValueRule.LiteralRule choices) {
                Set<String> listedTexts = new HashSet<>();
                listed.forEach(property -> listedTexts.add("\"" + property.keyText() + "\""));
                names = new ValueRule.LiteralRule(choices.texts.stream().filter(text -> !listedTexts.contains(text))
                        .toList());
            } else if (names instanceof ValueRule.StringRule strings && !listed.isEmpty()) {
                Set<String> listedNames = new HashSet<>();
                listed.forEach(property -> listedNames.add(property.name()));
                names = strings.without(listedNames);
            }
            if (GrammarState.start(names).feed('"') == null) {
                additionalRule = null; // no name is left for another key
            }
        }
        ValueRule.ObjectRule rule = new ValueRule.ObjectRule(listed, additionalRule, min, max, names);
        if (!rule.keysCanFit(0, 0)) {
            throw invalid(path, additionalRule == null && listed.size() < min
                    ? "minProperties " + min + " asks for more keys than the " + listed.size() + " properties allow"
                    : "maxProperties " + max + " is less than the " + rule.requiredFrom(0) + " required properties");
        }
        return rule;
    }

    /**
     * patternProperties' keys: the strings one of its patterns matches whole (their alternation), all of
     * whose schemas must be the same.
     */
    private static ValueRule patternNames(JsonNode patterns, String path) {
        if (!patterns.isObject()) {
            throw invalid(path, "patternProperties must be an object of schemas");
        }
        JsonNode schema = null;
        List<String> sources = new ArrayList<>();
        for (var fields = patterns.fields(); fields.hasNext(); ) {
            Map.Entry<String, JsonNode> field = fields.next();
            if (schema == null) {
                schema = field.getValue();
            } else if (!schema.equals(field.getValue())) {
                throw invalid(path, "patterns of different schemas are not supported");
            }
            sources.add(field.getKey());
        }
        if (sources.size() > 1) {
            // Each pattern's own anchors go (matched whole either way), so that the alternation keeps its only ones.
            sources.replaceAll(source -> "(?:" + unanchored(source) + ")");
        }
        try {
            return new ValueRule.StringRule(0, Integer.MAX_VALUE,
                    RegexAutomaton.compile(String.join("|", sources), 0, Integer.MAX_VALUE));
        } catch (IllegalArgumentException e) {
            throw invalid(path, e.getMessage());
        }
    }

    /** {@code pattern} less a {@code ^} at its start and an unescaped {@code $} at its end. */
    private static String unanchored(String pattern) {
        String core = pattern.startsWith("^") ? pattern.substring(1) : pattern;
        if (core.endsWith("$")) {
            int backslashes = 0;
            for (int i = core.length() - 2; i >= 0 && core.charAt(i) == '\\'; i--) {
                backslashes++;
            }
            if (backslashes % 2 == 0) {
                core = core.substring(0, core.length() - 1);
            }
        }
        return core;
    }

    /**
     * propertyNames: the schema every key must hold to, read as the schema of a string (its
     * {@code type} is string where it names none: {@code pattern}, {@code minLength}, {@code maxLength},
     * {@code format}, or {@code enum} / {@code const} of strings); null where every key may be a name.
     * {@code false} allows no name.
     */
    private ValueRule propertyNames(JsonNode node, String path) {
        if (node == null || (node.isBoolean() && node.booleanValue())) {
            return null;
        }
        if (node.isBoolean()) {
            return new ValueRule.LiteralRule(List.of());
        }
        if (!node.isObject()) {
            throw invalid(path, "a schema must be an object or a boolean");
        }
        for (String keyword : List.of("$ref", "anyOf", "oneOf", "allOf")) {
            if (node.has(keyword)) {
                throw invalid(path, "the keyword " + quoted(keyword) + " in propertyNames is not supported");
            }
        }
        JsonNode asString = node;
        if (!node.has("type") && !node.has("enum") && !node.has("const")) {
            asString = node.deepCopy();
            ((ObjectNode) asString).put("type", "string");
        }
        return compile(asString, path);
    }

    /**
     * items, or prefixItems then items (JSON Schema 2020-12: the listed schemas in order, then items for
     * the rest; {@code items: false} allows none past the listed ones).
     */
    private ValueRule array(JsonNode node, String path) {
        List<ValueRule> prefix = new ArrayList<>();
        JsonNode prefixItems = node.get("prefixItems");
        if (prefixItems != null) {
            if (!prefixItems.isArray()) {
                throw invalid(path + "/prefixItems", "must be an array of schemas");
            }
            for (int i = 0; i < prefixItems.size(); i++) {
                prefix.add(compile(prefixItems.get(i), path + "/prefixItems/" + i));
            }
        }
        JsonNode items = node.get("items");
        int min = count(node, "minItems", 0, path);
        int max = count(node, "maxItems", Integer.MAX_VALUE, path);
        boolean closed = items != null && items.isBoolean() && !items.booleanValue();
        if (closed) {
            max = Math.min(max, prefix.size());
        }
        ValueRule itemRule = items == null || closed ? ValueRule.AnyValue.INSTANCE : compile(items, path + "/items");
        if (min > max) {
            throw invalid(path, closed ? "minItems " + min + " asks for more items than the " + prefix.size()
                    + " that items false allows" : "minItems " + min + " is more than maxItems " + max);
        }
        ValueRule distinct = distinctItems(node, prefix, itemRule, path);
        if (distinct != null) {
            long values = distinct instanceof ValueRule.LiteralRule literals ? literals.texts.size()
                    : distinct instanceof ValueRule.NumberRule numbers
                            ? numbers.countUpTo(GrammarFrame.NumberFrame.MAX_DIGITS, Math.max(max, min))
                            : ((ValueRule.StringRule) distinct).pattern.textsUpTo(Math.max(max, min));
            max = (int) Math.min(max, values);
            if (min > max) {
                throw invalid(path, "minItems " + min + " asks for more distinct items than the " + values
                        + (distinct instanceof ValueRule.LiteralRule ? " values"
                                : distinct instanceof ValueRule.NumberRule ? " numbers" : " strings")
                        + " items allows");
            }
        }
        if (distinct instanceof ValueRule.NumberRule) {
            return new ValueRule.ArrayRule(prefix, itemRule, min, max, null, null, true);
        }
        return new ValueRule.ArrayRule(prefix, itemRule, min, max,
                distinct instanceof ValueRule.LiteralRule literals ? literals : null,
                distinct instanceof ValueRule.StringRule strings ? strings : null, false);
    }

    /**
     * uniqueItems: true, for items of enum, const or boolean (pydantic's set of a Literal or an Enum):
     * their values, each of which may come once; for string items (a set of str): the items' rule held
     * to a pattern, each of whose strings may come once; for numbers (a set of int or float, bounded or
     * not): the items' rule, each value once; null without it or with uniqueItems false.
     * Other items would need every item's value kept to compare: refused.
     */
    private static ValueRule distinctItems(JsonNode node, List<ValueRule> prefix, ValueRule itemRule, String path) {
        JsonNode unique = node.get("uniqueItems");
        if (unique == null || (unique.isBoolean() && !unique.booleanValue())) {
            return null;
        }
        if (!unique.isBoolean()) {
            throw invalid(path + "/uniqueItems", "uniqueItems must be true or false");
        }
        ValueRule resolved = itemRule;
        while (resolved instanceof ValueRule.Reference reference && reference.target != null) {
            resolved = reference.target;
        }
        if (prefix.isEmpty() && resolved instanceof ValueRule.StringRule strings) {
            return strings.patterned();
        }
        if (prefix.isEmpty() && resolved instanceof ValueRule.NumberRule number) {
            return number;
        }
        if (!prefix.isEmpty() || !(resolved instanceof ValueRule.LiteralRule literals)) {
            throw invalid(path, "uniqueItems: true is held only for items of enum, const, boolean, string, "
                    + "integer or number (without prefixItems)");
        }
        return new ValueRule.LiteralRule(List.copyOf(new LinkedHashSet<>(literals.texts)));
    }

    /** A number within its bounds ({@link #bounds}) and a multiple of its multipleOf ({@link #multipleOf}). */
    private static ValueRule number(JsonNode node, String path) {
        DecimalBounds bounds = bounds(node, path);
        BigDecimal multipleOf = multipleOf(node, path);
        if (bounds == null && multipleOf == null) {
            return ValueRule.NumberRule.NUMBER;
        }
        DecimalBounds held = (bounds == null ? DecimalBounds.NONE : bounds).withMultipleOf(multipleOf);
        if (held.empty()) {
            throw invalid(path, multipleOf == null ? "no number lies between its minimum and maximum"
                    : "no multiple of " + multipleOf.toPlainString() + " lies between its minimum and maximum");
        }
        return new ValueRule.NumberRule(false, null, null, held);
    }

    /**
     * An integer within its bounds ({@link #bounds}), each turned into the integer bound it means, and
     * a multiple of its multipleOf: of the least positive integer that is a multiple of it (3 for 1.5;
     * none for 1 or 0.5, which every integer is a multiple of).
     */
    private static ValueRule integer(JsonNode node, String path) {
        DecimalBounds bounds = bounds(node, path);
        BigDecimal multipleOf = multipleOf(node, path);
        BigInteger step = multipleOf == null ? null : leastIntegerMultiple(multipleOf);
        step = step == null || step.equals(BigInteger.ONE) ? null : step;
        if (bounds == null && step == null) {
            return ValueRule.NumberRule.INTEGER;
        }
        BigInteger minimum = bounds == null ? null : bounds.integerMinimum();
        BigInteger maximum = bounds == null ? null : bounds.integerMaximum();
        ValueRule.NumberRule rule = new ValueRule.NumberRule(true, minimum, maximum, step, null);
        if (minimum != null && maximum != null && !rule.intersects(minimum, maximum)) {
            throw invalid(path, step == null ? "no integer lies between its minimum and maximum"
                    : "no integer multiple of " + multipleOf.toPlainString() + " lies between its minimum and maximum");
        }
        return rule;
    }

    /**
     * multipleOf, or null: a number greater than 0 with at most {@link GrammarFrame.NumberFrame#MAX_DIGITS}
     * places after the point (so that its multiples can be written within a number's digits).
     */
    private static BigDecimal multipleOf(JsonNode node, String path) {
        JsonNode value = node.get("multipleOf");
        if (value == null) {
            return null;
        }
        if (!value.isNumber() || value.decimalValue().signum() <= 0) {
            throw invalid(path + "/multipleOf", "multipleOf must be a number greater than 0");
        }
        BigDecimal multipleOf = value.decimalValue().stripTrailingZeros();
        if (multipleOf.scale() > GrammarFrame.NumberFrame.MAX_DIGITS) {
            throw invalid(path + "/multipleOf", "multipleOf " + multipleOf.toPlainString() + " has more than "
                    + GrammarFrame.NumberFrame.MAX_DIGITS + " places after the point, more than a number may write");
        }
        return multipleOf;
    }

    /** The least positive integer that is a whole multiple of {@code value} (> 0): its numerator in lowest terms. */
    private static BigInteger leastIntegerMultiple(BigDecimal value) {
        if (value.scale() <= 0) {
            return value.toBigIntegerExact();
        }
        BigInteger numerator = value.unscaledValue();
        BigInteger denominator = BigInteger.TEN.pow(value.scale());
        return numerator.divide(numerator.gcd(denominator));
    }

    /**
     * The tightest of minimum, exclusiveMinimum, maximum and exclusiveMaximum (2020-12's numbers) on
     * each side, or null when the node gives none.
     */
    private static DecimalBounds bounds(JsonNode node, String path) {
        BigDecimal minimum = null;
        boolean minimumExclusive = false;
        BigDecimal maximum = null;
        boolean maximumExclusive = false;
        for (String name : List.of("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")) {
            JsonNode value = node.get(name);
            if (value == null) {
                continue;
            }
            if (!value.isNumber()) {
                throw invalid(path + "/" + name, name + " must be a number");
            }
            BigDecimal bound = value.decimalValue();
            boolean exclusive = name.startsWith("exclusive");
            if (name.endsWith("inimum")) {
                int order = minimum == null ? 1 : bound.compareTo(minimum);
                if (order > 0 || (order == 0 && exclusive)) {
                    minimum = bound;
                    minimumExclusive = exclusive;
                }
            } else {
                int order = maximum == null ? -1 : bound.compareTo(maximum);
                if (order < 0 || (order == 0 && exclusive)) {
                    maximum = bound;
                    maximumExclusive = exclusive;
                }
            }
        }
        return minimum == null && maximum == null ? null
                : new DecimalBounds(minimum, minimumExclusive, maximum, maximumExclusive);
    }

    /** enum or const: the values as JSON spells them (compact), those of the node's types if it names any. */
    private static ValueRule literals(JsonNode node, Set<String> keywords, List<String> types, String path) {
        for (String keyword : keywords) {
            if (!keyword.equals("enum") && !keyword.equals("const") && !keyword.equals("type")) {
                throw invalid(path, "the keyword " + quoted(keyword) + " beside enum or const is not supported");
            }
        }
        if (keywords.contains("enum") && keywords.contains("const")) {
            throw invalid(path, "give enum or const, not both");
        }
        List<JsonNode> values = new ArrayList<>();
        if (keywords.contains("const")) {
            values.add(node.get("const"));
        } else {
            nonEmptyArray(node.get("enum"), path + "/enum").forEach(values::add);
        }
        LinkedHashSet<String> texts = new LinkedHashSet<>();
        for (JsonNode value : values) {
            if (types == null || types.stream().anyMatch(type -> isOfType(value, type))) {
                try {
                    texts.add(JSON.writeValueAsString(value));
                } catch (JsonProcessingException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        if (texts.isEmpty()) {
            throw invalid(path, "no value of enum or const is of the schema's type");
        }
        return new ValueRule.LiteralRule(List.copyOf(texts));
    }

    private static boolean isOfType(JsonNode value, String type) {
        return switch (type) {
            case "object" -> value.isObject();
            case "array" -> value.isArray();
            case "string" -> value.isTextual();
            case "number" -> value.isNumber();
            case "integer" -> value.isIntegralNumber();
            case "boolean" -> value.isBoolean();
            case "null" -> value.isNull();
            default -> false;
        };
    }

    private ValueRule reference(String ref, String path) {
        JsonNode target = referenced(ref, path);
        String pointer = ref.substring(1);
        ValueRule.Reference reference = references.get(pointer);
        if (reference != null) {
            return reference;
        }
        reference = new ValueRule.Reference(pointer);
        references.put(pointer, reference);
        reference.target = compile(target, ref);
        return reference;
    }

    /** The schema {@code ref} (within the document, "#...") points to; refused where it points nowhere. */
    private JsonNode referenced(String ref, String path) {
        if (!ref.startsWith("#")) {
            throw invalid(path + "/$ref", "only references within the schema (starting with #) are supported, got "
                    + quoted(ref));
        }
        JsonNode target;
        try {
            target = document.at(JsonPointer.compile(ref.substring(1)));
        } catch (IllegalArgumentException e) {
            throw invalid(path + "/$ref", quoted(ref) + " is not a JSON pointer");
        }
        if (target.isMissingNode()) {
            throw invalid(path + "/$ref", quoted(ref) + " points to nothing in the schema");
        }
        return target;
    }

    /**
     * An allOf of object schemas as one object schema, as OpenAPI's inheritance writes them ({"allOf":
     * [{"$ref": Base}, {"properties": ...}]}): their properties together (a name in two of them with the
     * same schema), their required names together, and, where one closes its object
     * (additionalProperties false), only the names every closed one lists, closed. A part with another
     * keyword, or a name given two schemas, is refused.
     */
    private ObjectNode mergedObjects(JsonNode list, String path) {
        ObjectNode properties = JSON.createObjectNode();
        Set<String> required = new LinkedHashSet<>();
        List<Set<String>> closedTo = new ArrayList<>();
        List<JsonNode> parts = new ArrayList<>();
        for (int i = 0; i < list.size(); i++) {
            flattenAllOf(list.get(i), path + "/" + i, parts, 0);
        }
        boolean anObject = false;
        for (JsonNode part : parts) {
            if (part.isBoolean() && part.booleanValue()) {
                continue;
            }
            if (!part.isObject()) {
                throw invalid(path, "allOf of more than one schema is supported for object schemas only");
            }
            Set<String> names = new LinkedHashSet<>();
            for (Iterator<Map.Entry<String, JsonNode>> fields = part.fields(); fields.hasNext(); ) {
                Map.Entry<String, JsonNode> field = fields.next();
                String keyword = field.getKey();
                JsonNode value = field.getValue();
                anObject |= OBJECT_KEYWORDS.contains(keyword) || keyword.equals("type");
                switch (keyword) {
                    case "type" -> {
                        if (!value.isTextual() || !value.textValue().equals("object")) {
                            throw invalid(path, "allOf of more than one schema is supported for object schemas only,"
                                    + " not type " + value);
                        }
                    }
                    case "properties" -> {
                        if (!value.isObject()) {
                            throw invalid(path, "properties must be an object of schemas");
                        }
                        for (Iterator<Map.Entry<String, JsonNode>> named = value.fields(); named.hasNext(); ) {
                            Map.Entry<String, JsonNode> property = named.next();
                            names.add(property.getKey());
                            JsonNode before = properties.get(property.getKey());
                            if (before != null && !before.equals(property.getValue())) {
                                throw invalid(path, "the property " + quoted(property.getKey())
                                        + " has two different schemas in allOf, which is not supported");
                            }
                            properties.set(property.getKey(), property.getValue());
                        }
                    }
                    case "required" -> value.forEach(name -> required.add(text(name, path + "/required")));
                    case "additionalProperties" -> {
                        if (!value.isBoolean()) {
                            throw invalid(path, "additionalProperties other than true or false in a part of allOf"
                                    + " is not supported");
                        }
                        if (!value.booleanValue()) {
                            closedTo.add(names);
                        }
                    }
                    default -> {
                        if (!ANNOTATIONS.contains(keyword)) {
                            throw invalid(path, "allOf of more than one schema is supported for object schemas"
                                    + " (properties, required, additionalProperties), not beside " + quoted(keyword));
                        }
                    }
                }
            }
        }
        if (!anObject) {
            return JSON.createObjectNode(); // annotations alone: any value
        }
        for (Set<String> closed : closedTo) {
            properties.retain(closed);
        }
        for (String name : required) {
            if (!properties.has(name)) {
                throw invalid(path, "allOf requires " + quoted(name) + ", which "
                        + (closedTo.isEmpty() ? "no part's properties define" : "a part closed to other properties leaves out"));
            }
        }
        ObjectNode merged = JSON.createObjectNode().put("type", "object");
        merged.set("properties", properties);
        required.forEach(merged.withArray("required")::add);
        if (!closedTo.isEmpty()) {
            merged.put("additionalProperties", false);
        }
        return merged;
    }

    /** The schemas of an allOf part: a $ref followed, a nested allOf's parts taken in. */
    private void flattenAllOf(JsonNode part, String path, List<JsonNode> parts, int depth) {
        if (depth > 32) {
            throw invalid(path, "allOf refers to itself");
        }
        if (part.isObject() && part.has("$ref") && allAnnotationsBut(part, "$ref")) {
            String ref = text(part.get("$ref"), path + "/$ref");
            flattenAllOf(referenced(ref, path), ref, parts, depth + 1);
        } else if (part.isObject() && part.has("allOf")) {
            ObjectNode rest = ((ObjectNode) part).deepCopy();
            rest.remove("allOf");
            JsonNode list = nonEmptyArray(part.get("allOf"), path + "/allOf");
            for (int i = 0; i < list.size(); i++) {
                flattenAllOf(list.get(i), path + "/allOf/" + i, parts, depth + 1);
            }
            parts.add(rest);
        } else {
            parts.add(part);
        }
    }

    private static boolean allAnnotationsBut(JsonNode node, String keyword) {
        for (Iterator<String> names = node.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            if (!name.equals(keyword) && !ANNOTATIONS.contains(name)) {
                return false;
            }
        }
        return true;
    }

    private static void onlyBeside(Set<String> keywords, String path, String keyword) {
        for (String other : keywords) {
            if (!other.equals(keyword)) {
                throw invalid(path, "the keyword " + quoted(other) + " beside " + keyword + " is not supported");
            }
        }
    }

    private static JsonNode nonEmptyArray(JsonNode node, String path) {
        if (node == null || !node.isArray() || node.isEmpty()) {
            throw invalid(path, "must be a non-empty array");
        }
        return node;
    }

    private static String text(JsonNode node, String path) {
        if (node == null || !node.isTextual()) {
            throw invalid(path, "must be a string");
        }
        return node.textValue();
    }

    private static int count(JsonNode node, String name, int absent, String path) {
        JsonNode value = node.get(name);
        if (value == null) {
            return absent;
        }
        if (!value.canConvertToExactIntegral() || value.asLong() < 0 || value.asLong() > Integer.MAX_VALUE) {
            throw invalid(path + "/" + name, name + " must be a non-negative integer");
        }
        return value.asInt();
    }

    /** A property name as JSON spells it between its quotes. */
    private static String keyText(String name) {
        try {
            String quoted = JSON.writeValueAsString(name);
            return quoted.substring(1, quoted.length() - 1);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String escapePointer(String name) {
        return name.replace("~", "~0").replace("/", "~1");
    }

    private static String quoted(String text) {
        return "\"" + text + "\"";
    }

    private static IllegalArgumentException invalid(String path, String message) {
        return new IllegalArgumentException("at " + path + ": " + message);
    }

    /**
     * Refuses a schema whose references go round without spelling a character ({@code $defs/A} an
     * anyOf holding {@code $ref A}): starting a value of it would never end. Going round through an
     * object or an array is recursion, which is fine: each round spells a bracket.
     */
    private static final class StartCheck {
        private final Set<ValueRule> walked = Collections.newSetFromMap(new IdentityHashMap<>());
        private final Set<ValueRule> clear = Collections.newSetFromMap(new IdentityHashMap<>());

        /** Checks every rule {@code rule} reaches. */
        void check(ValueRule rule) {
            if (!walked.add(rule)) {
                return;
            }
            starts(rule, Collections.newSetFromMap(new IdentityHashMap<>()));
            switch (rule) {
                case ValueRule.UnionRule union -> union.alternatives.forEach(this::check);
                case ValueRule.Reference reference -> check(reference.target);
                case ValueRule.ObjectRule object -> {
                    object.properties.forEach(property -> check(property.value()));
                    if (object.additional != null) {
                        check(object.additional);
                    }
                }
                case ValueRule.ArrayRule array -> {
                    array.prefix.forEach(this::check);
                    check(array.items);
                }
                default -> { }
            }
        }

        /** Follows the rules a value of {@code rule} starts as, before its first character. */
        private void starts(ValueRule rule, Set<ValueRule> path) {
            if (clear.contains(rule)) {
                return;
            }
            if (!path.add(rule)) {
                throw new IllegalArgumentException("the schema's references go round without a value between them"
                        + (rule instanceof ValueRule.Reference reference ? " (at #" + reference.pointer + ")" : ""));
            }
            switch (rule) {
                case ValueRule.UnionRule union -> union.alternatives.forEach(alternative -> starts(alternative, path));
                case ValueRule.Reference reference -> starts(reference.target, path);
                default -> { }
            }
            path.remove(rule);
            clear.add(rule);
        }
    }
}
