package dev.coil.engine.runner;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Reads a structural tag (vLLM's {@code structural_tag}, xgrammar's format objects) into the rules the
 * output is held to. Two forms are taken:
 * <ul>
 * <li>{@code {"type": "structural_tag", "format": F}}, F a tree of formats: {@code const_string},
 *     {@code json_schema} (JSON style), {@code grammar} (GBNF), {@code regex}, {@code any_text}
 *     (with {@code excludes} and {@code max_chars}), {@code sequence}, {@code or}, {@code optional}, {@code star},
 *     {@code plus}, {@code repeat}, {@code tag} (a string begin, one end or a list of them),
 *     {@code triggered_tags}, {@code tags_with_separator} and {@code dispatch};</li>
 * <li>the older {@code {"type": "structural_tag", "structures": [{"begin", "schema", "end"}],
 *     "triggers": [...]}}, read as {@code triggered_tags} of tags whose content is the schema's JSON.</li>
 * </ul>
 * Inside a tag, free text at the end of its content ({@code any_text}, the free text of
 * {@code triggered_tags}) runs to the tag's end: it cannot hold the end, so the first end closes the
 * tag. The token-level formats ({@code token}, {@code any_tokens}, ...), other JSON
 * styles, {@code any_order} and {@code any_text}'s token budget are refused by name, as is a
 * field a format does not have.
 */
final class StructuralTag {

    private static final Set<String> TOKEN_LEVEL = Set.of("token", "exclude_token", "any_tokens",
            "token_triggered_tags", "token_dispatch");
    private static final String TYPES = "const_string, json_schema, grammar, regex, any_text, sequence, or, "
            + "optional, star, plus, repeat, tag, triggered_tags, tags_with_separator and dispatch";

    private StructuralTag() {
    }

    /** The rule of {@code tag}, a structural tag in either form. IllegalArgumentException says what is wrong and where. */
    static ValueRule compile(JsonNode tag) {
        if (tag == null || !tag.isObject()) {
            throw new IllegalArgumentException("a structural tag must be an object");
        }
        JsonNode type = tag.get("type");
        if (type != null && !(type.isTextual() && type.textValue().equals("structural_tag"))) {
            throw new IllegalArgumentException("a structural tag's type must be \"structural_tag\"");
        }
        if (tag.has("format")) {
            fieldsOf(tag, "", "type", "format");
            return format(tag.get("format"), "format", List.of());
        }
        if (tag.has("structures") || tag.has("triggers")) {
            fieldsOf(tag, "", "type", "structures", "triggers");
            return structures(tag);
        }
        throw new IllegalArgumentException("a structural tag needs \"format\" (or \"structures\" and \"triggers\")");
    }

    /** The older form: tags of a begin, a schema's JSON and an end, each begun where a trigger appears. */
    private static ValueRule structures(JsonNode tag) {
        List<String> triggers = strings(tag.get("triggers"), "triggers", false);
        JsonNode structures = tag.get("structures");
        if (structures == null || !structures.isArray() || structures.isEmpty()) {
            throw new IllegalArgumentException("structures must be a non-empty array");
        }
        List<StructuralRules.SequenceRule> tags = new ArrayList<>();
        List<String> begins = new ArrayList<>();
        for (int i = 0; i < structures.size(); i++) {
            String path = "structures[" + i + "]";
            JsonNode structure = structures.get(i);
            if (!structure.isObject()) {
                throw new IllegalArgumentException(path + " must be an object");
            }
            fieldsOf(structure, path, "begin", "schema", "end");
            String begin = string(structure.get("begin"), path + ".begin");
            String end = string(structure.get("end"), path + ".end");
            JsonNode schema = structure.get("schema");
            if (schema == null || !(schema.isObject() || schema.isBoolean())) {
                throw new IllegalArgumentException(path + ".schema must be a JSON schema");
            }
            begins.add(begin);
            tags.add(tagRule(begin, schema(schema, path + ".schema"), List.of(end)));
        }
        return triggeredTags(triggers, tags, begins, false, false, List.of(), "structures");
    }

    /**
     * The rule of format {@code node} at {@code path}; {@code ends}: the ends of the tag whose content
     * this format ends, which its free text at the end cannot hold (empty outside a tag's end).
     */
    private static ValueRule format(JsonNode node, String path, List<String> ends) {
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException(path + " must be a format object");
        }
        JsonNode typeNode = node.get("type");
        if (typeNode == null || !typeNode.isTextual()) {
            throw new IllegalArgumentException(path + ".type must be one of " + TYPES);
        }
        String type = typeNode.textValue();
        if (TOKEN_LEVEL.contains(type) || type.equals("qwen_xml_parameter")) {
            throw new IllegalArgumentException(path + ": the format \"" + type + "\" is not supported; "
                    + "formats taken: " + TYPES);
        }
        return switch (type) {
            case "const_string" -> {
                fieldsOf(node, path, "type", "value");
                yield new ValueRule.LiteralRule(List.of(string(node.get("value"), path + ".value")));
            }
            case "json_schema" -> {
                fieldsOf(node, path, "type", "json_schema", "style", "any_order");
                JsonNode style = node.get("style");
                if (style != null && !(style.isTextual() && style.textValue().equals("json"))) {
                    throw new IllegalArgumentException(path + ".style: only \"json\" is supported");
                }
                if (node.has("any_order") && node.get("any_order").asBoolean(true)) {
                    throw new IllegalArgumentException(path + ".any_order is not supported: properties come in "
                            + "the schema's order");
                }
                JsonNode schema = node.get("json_schema");
                if (schema == null || !(schema.isObject() || schema.isBoolean())) {
                    throw new IllegalArgumentException(path + ".json_schema must be a JSON schema");
                }
                yield schema(schema, path + ".json_schema");
            }
            case "grammar" -> {
                fieldsOf(node, path, "type", "grammar");
                String grammar = string(node.get("grammar"), path + ".grammar");
                try {
                    yield new ValueRule.GrammarRule(ContextFreeGrammar.compile(grammar));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(path + ".grammar: " + e.getMessage(), e);
                }
            }
            case "regex" -> {
                fieldsOf(node, path, "type", "pattern");
                String pattern = string(node.get("pattern"), path + ".pattern");
                try {
                    yield new ValueRule.RegexRule(RegexAutomaton.compile(pattern, 0, Integer.MAX_VALUE));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(path + ".pattern: " + e.getMessage(), e);
                }
            }
            case "any_text" -> {
                fieldsOf(node, path, "type", "excludes", "max_tokens", "max_chars");
                if (node.has("max_tokens") && !node.get("max_tokens").isNull()) {
                    throw new IllegalArgumentException(path + ".max_tokens is not supported (a grammar here reads "
                            + "characters; give max_chars, or the request's max_tokens for the whole output)");
                }
                JsonNode maxChars = node.get("max_chars");
                if (maxChars != null && !maxChars.isNull() && !(maxChars.isIntegralNumber() && maxChars.canConvertToInt()
                        && maxChars.intValue() >= 0)) {
                    throw new IllegalArgumentException(path + ".max_chars must be an integer of at least 0");
                }
                yield new StructuralRules.AnyTextRule(excluded(node, path, ends),
                        maxChars == null || maxChars.isNull() ? -1 : maxChars.intValue());
            }
            case "sequence" -> {
                fieldsOf(node, path, "type", "elements");
                List<JsonNode> elements = elements(node, path);
                List<ValueRule> rules = new ArrayList<>();
                for (int i = 0; i < elements.size(); i++) {
                    rules.add(format(elements.get(i), path + ".elements[" + i + "]",
                            i == elements.size() - 1 ? ends : List.of()));
                }
                yield rules.size() == 1 ? rules.getFirst() : new StructuralRules.SequenceRule(rules);
            }
            case "or" -> {
                fieldsOf(node, path, "type", "elements");
                List<JsonNode> elements = elements(node, path);
                List<ValueRule> rules = new ArrayList<>();
                for (int i = 0; i < elements.size(); i++) {
                    rules.add(format(elements.get(i), path + ".elements[" + i + "]", ends));
                }
                yield rules.size() == 1 ? rules.getFirst() : new ValueRule.UnionRule(rules);
            }
            case "optional", "star", "plus" -> {
                fieldsOf(node, path, "type", "content");
                int least = type.equals("plus") ? 1 : 0;
                int most = type.equals("optional") ? 1 : -1;
                yield repeat(format(node.get("content"), path + ".content", ends), least, most, path);
            }
            case "repeat" -> {
                fieldsOf(node, path, "type", "content", "min", "max");
                JsonNode min = node.get("min");
                JsonNode max = node.get("max");
                if (min == null || !min.canConvertToInt() || !min.isIntegralNumber() || min.intValue() < 0) {
                    throw new IllegalArgumentException(path + ".min must be an integer of at least 0");
                }
                if (max == null || !max.canConvertToInt() || !max.isIntegralNumber()
                        || max.intValue() != -1 && (max.intValue() < min.intValue() || max.intValue() < 1)) {
                    throw new IllegalArgumentException(path + ".max must be -1 (no most) or an integer of at least "
                            + "min and 1");
                }
                yield repeat(format(node.get("content"), path + ".content", ends), min.intValue(), max.intValue(),
                        path);
            }
            case "tag" -> tag(node, path).rule();
            case "triggered_tags" -> {
                fieldsOf(node, path, "type", "triggers", "tags", "at_least_one", "stop_after_first", "excludes");
                List<String> triggers = strings(node.get("triggers"), path + ".triggers", false);
                List<StructuralRules.SequenceRule> tags = new ArrayList<>();
                List<String> begins = new ArrayList<>();
                for (Tag tag : tags(node, path)) {
                    tags.add(tag.rule());
                    begins.add(tag.begin());
                }
                yield triggeredTags(triggers, tags, begins, flag(node, "at_least_one", path),
                        flag(node, "stop_after_first", path), excluded(node, path, ends), path);
            }
            case "dispatch" -> {
                // Free text in which each rule's pattern is followed by its format: triggered tags whose
                // trigger is the whole begin and whose end is empty; after one, free text again with loop.
                fieldsOf(node, path, "type", "rules", "loop", "excludes");
                JsonNode rules = node.get("rules");
                if (rules == null || !rules.isArray() || rules.isEmpty()) {
                    throw new IllegalArgumentException(path + ".rules must be a non-empty array of [pattern, format]");
                }
                List<String> patterns = new ArrayList<>();
                List<StructuralRules.SequenceRule> tags = new ArrayList<>();
                for (int i = 0; i < rules.size(); i++) {
                    String rulePath = path + ".rules[" + i + "]";
                    JsonNode rule = rules.get(i);
                    if (!rule.isArray() || rule.size() != 2 || !rule.get(0).isTextual() || rule.get(0).textValue().isEmpty()) {
                        throw new IllegalArgumentException(rulePath + " must be [a non-empty pattern, a format]");
                    }
                    String pattern = rule.get(0).textValue();
                    patterns.add(pattern);
                    tags.add(new StructuralRules.SequenceRule(List.of(new ValueRule.LiteralRule(List.of(pattern)),
                            format(rule.get(1), rulePath + "[1]", ends))));
                }
                JsonNode loop = node.get("loop");
                if (loop != null && !loop.isBoolean()) {
                    throw new IllegalArgumentException(path + ".loop must be a boolean");
                }
                yield triggeredTags(patterns, tags, patterns, false, loop != null && !loop.booleanValue(),
                        excluded(node, path, ends), path);
            }
            case "tags_with_separator" -> {
                fieldsOf(node, path, "type", "tags", "separator", "at_least_one", "stop_after_first");
                String separator = string(node.get("separator"), path + ".separator");
                List<ValueRule> tags = new ArrayList<>();
                for (Tag tag : tags(node, path)) {
                    tags.add(tag.rule());
                }
                ValueRule oneTag = tags.size() == 1 ? tags.getFirst() : new ValueRule.UnionRule(tags);
                boolean atLeastOne = flag(node, "at_least_one", path);
                // tag (separator tag)*, or one tag with stop_after_first; optional without at_least_one.
                ValueRule list = flag(node, "stop_after_first", path) ? oneTag
                        : new StructuralRules.SequenceRule(List.of(oneTag, repeat(separator.isEmpty() ? oneTag
                                : new StructuralRules.SequenceRule(List.of(new ValueRule.LiteralRule(List.of(separator)),
                                        oneTag)), 0, -1, path)));
                yield atLeastOne ? list : repeat(list, 0, 1, path);
            }
            default -> throw new IllegalArgumentException(path + ".type must be one of " + TYPES + ", got \"" + type
                    + "\"");
        };
    }

    /** A tag: its begin (where triggered tags dispatch on it) and its rule. */
    private record Tag(String begin, StructuralRules.SequenceRule rule) {
    }

    /** A {@code tag} format: a string begin, the content, and one end or any of a list of them. */
    private static Tag tag(JsonNode node, String path) {
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException(path + " must be a tag object");
        }
        fieldsOf(node, path, "type", "begin", "content", "end");
        JsonNode type = node.get("type");
        if (type != null && !(type.isTextual() && type.textValue().equals("tag"))) {
            throw new IllegalArgumentException(path + ".type must be \"tag\"");
        }
        JsonNode beginNode = node.get("begin");
        if (beginNode != null && beginNode.isObject()) {
            throw new IllegalArgumentException(path + ".begin: token begins are not supported; give a string");
        }
        String begin = string(beginNode, path + ".begin");
        JsonNode endNode = node.get("end");
        List<String> ends;
        if (endNode != null && endNode.isArray()) {
            ends = strings(endNode, path + ".end", true);
        } else if (endNode != null && endNode.isObject()) {
            throw new IllegalArgumentException(path + ".end: token ends are not supported; give a string");
        } else {
            ends = List.of(string(endNode, path + ".end"));
        }
        List<String> nonEmptyEnds = ends.stream().filter(end -> !end.isEmpty()).toList();
        ValueRule content = format(node.get("content"), path + ".content",
                nonEmptyEnds.size() == ends.size() ? nonEmptyEnds : List.of());
        return new Tag(begin, tagRule(begin, content, ends));
    }

    /** A begin, a content and one of the ends, in order. */
    private static StructuralRules.SequenceRule tagRule(String begin, ValueRule content, List<String> ends) {
        return new StructuralRules.SequenceRule(List.of(new ValueRule.LiteralRule(List.of(begin)), content,
                new ValueRule.LiteralRule(List.copyOf(new LinkedHashSet<>(ends)))));
    }

    /** The {@code tags} of a triggered_tags or tags_with_separator format. */
    private static List<Tag> tags(JsonNode node, String path) {
        JsonNode tags = node.get("tags");
        if (tags == null || !tags.isArray() || tags.isEmpty()) {
            throw new IllegalArgumentException(path + ".tags must be a non-empty array of tags");
        }
        List<Tag> read = new ArrayList<>();
        for (int i = 0; i < tags.size(); i++) {
            read.add(tag(tags.get(i), path + ".tags[" + i + "]"));
        }
        return read;
    }

    private static ValueRule triggeredTags(List<String> triggers, List<StructuralRules.SequenceRule> tags,
            List<String> begins, boolean atLeastOne, boolean stopAfterFirst, List<String> excluded, String path) {
        for (int i = 0; i < begins.size(); i++) {
            String begin = begins.get(i);
            if (triggers.stream().noneMatch(begin::startsWith)) {
                throw new IllegalArgumentException(path + ": the begin \"" + begin + "\" starts with none of the "
                        + "triggers " + triggers);
            }
        }
        return new StructuralRules.TriggeredTagsRule(triggers, tags, begins, atLeastOne, stopAfterFirst, excluded);
    }

    private static ValueRule repeat(ValueRule content, int least, int most, String path) {
        if (ValueRule.matchesEmpty(content)) {
            if (most == 1) {
                return content; // an optional text that may be empty already
            }
            throw new IllegalArgumentException(path + ": a repeated format must not match the empty text");
        }
        return new StructuralRules.RepeatRule(content, least, most);
    }

    private static ValueRule schema(JsonNode schema, String path) {
        try {
            return JsonSchemaCompiler.compile(schema);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(path + ": " + e.getMessage(), e);
        }
    }

    /** A format's {@code excludes} and the ends its free text runs to, the empty ones left out. */
    private static List<String> excluded(JsonNode node, String path, List<String> ends) {
        List<String> excluded = new ArrayList<>(node.has("excludes")
                ? strings(node.get("excludes"), path + ".excludes", true) : List.of());
        excluded.addAll(ends);
        return excluded.stream().filter(text -> !text.isEmpty()).distinct().toList();
    }

    private static List<JsonNode> elements(JsonNode node, String path) {
        JsonNode elements = node.get("elements");
        if (elements == null || !elements.isArray() || elements.isEmpty()) {
            throw new IllegalArgumentException(path + ".elements must be a non-empty array of formats");
        }
        List<JsonNode> list = new ArrayList<>();
        elements.forEach(list::add);
        return list;
    }

    private static boolean flag(JsonNode node, String name, String path) {
        JsonNode value = node.get(name);
        if (value == null || value.isNull()) {
            return false;
        }
        if (!value.isBoolean()) {
            throw new IllegalArgumentException(path + "." + name + " must be a boolean");
        }
        return value.booleanValue();
    }

    private static String string(JsonNode node, String path) {
        if (node == null || !node.isTextual()) {
            throw new IllegalArgumentException(path + " must be a string");
        }
        return node.textValue();
    }

    /** An array of strings ({@code mayBeEmpty}: an empty array or empty strings allowed). */
    private static List<String> strings(JsonNode node, String path, boolean mayBeEmpty) {
        if (node == null || !node.isArray() || !mayBeEmpty && node.isEmpty()) {
            throw new IllegalArgumentException(path + " must be a" + (mayBeEmpty ? "n" : " non-empty")
                    + " array of strings");
        }
        List<String> strings = new ArrayList<>();
        for (JsonNode element : node) {
            if (!element.isTextual() || !mayBeEmpty && element.textValue().isEmpty()) {
                throw new IllegalArgumentException(path + " must hold " + (mayBeEmpty ? "" : "non-empty ")
                        + "strings");
            }
            strings.add(element.textValue());
        }
        return strings;
    }

    /** Refuses a field of {@code node} not among {@code fields}, rather than leaving what it asks undone. */
    private static void fieldsOf(JsonNode node, String path, String... fields) {
        Set<String> known = Set.of(fields);
        for (Iterator<String> names = node.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            if (!known.contains(name)) {
                throw new IllegalArgumentException((path.isEmpty() ? "" : path + ": ") + "the field \"" + name
                        + "\" is not supported here");
            }
        }
    }
}
