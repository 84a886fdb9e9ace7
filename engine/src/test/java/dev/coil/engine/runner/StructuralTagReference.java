package dev.coil.engine.runner;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * The plain reference a structural tag's grammar is checked against: whether a whole text follows a
 * format, by the set of places each format's text may end at from a given place, read straight from
 * the format's JSON. JSON content is judged by Jackson (strict, one value, no whitespace around it) and
 * networknt's validator, a regex by java.util.regex. Slow and simple; for tests only. Grammar formats
 * are not judged here.
 */
final class StructuralTagReference {

    private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final String text;

    private StructuralTagReference(String text) {
        this.text = text;
    }

    /** Whether {@code text} follows the structural tag {@code tag} (JSON text, either form) whole. */
    static boolean matches(String tag, String text) {
        try {
            JsonNode node = JSON.readTree(tag);
            JsonNode format = node.has("format") ? node.get("format") : legacy(node);
            return new StructuralTagReference(text).ends(format, 0, List.of()).contains(text.length());
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(e);
        }
    }

    /** The older form as the triggered_tags format it stands for. */
    private static JsonNode legacy(JsonNode node) {
        var tags = JSON.createArrayNode();
        for (JsonNode structure : node.get("structures")) {
            var content = JSON.createObjectNode().put("type", "json_schema");
            content.set("json_schema", structure.get("schema"));
            var tag = JSON.createObjectNode().put("begin", structure.get("begin").textValue())
                    .put("end", structure.get("end").textValue());
            tag.set("content", content);
            tags.add(tag);
        }
        var format = JSON.createObjectNode().put("type", "triggered_tags");
        format.set("triggers", node.get("triggers"));
        format.set("tags", tags);
        return format;
    }

    /** Where a text of {@code format} starting at {@code from} may end; {@code ends}: the enclosing tag's ends its free text at the end cannot hold. */
    private Set<Integer> ends(JsonNode format, int from, List<String> ends) {
        Set<Integer> out = new TreeSet<>();
        String type = format.has("type") ? format.get("type").textValue() : "tag";
        switch (type) {
            case "const_string" -> literal(format.get("value").textValue(), from, out);
            case "json_schema" -> {
                for (int end = from + 1; end <= text.length(); end++) {
                    if (isJson(format.get("json_schema").toString(), text.substring(from, end))) {
                        out.add(end);
                    }
                }
            }
            case "regex" -> {
                Pattern pattern = Pattern.compile(format.get("pattern").textValue());
                for (int end = from; end <= text.length(); end++) {
                    if (pattern.matcher(text).region(from, end).matches()) {
                        out.add(end);
                    }
                }
            }
            case "any_text" -> {
                List<String> excluded = strings(format.get("excludes"));
                excluded.addAll(ends);
                int most = format.path("max_chars").asInt(Integer.MAX_VALUE);
                for (int end = from; end <= text.length() && holdsNone(from, end, excluded)
                        && text.codePointCount(from, end) <= most; end++) {
                    out.add(end);
                }
            }
            case "sequence" -> {
                Set<Integer> at = Set.of(from);
                int count = format.get("elements").size();
                for (int i = 0; i < count; i++) {
                    Set<Integer> next = new TreeSet<>();
                    for (int start : at) {
                        next.addAll(ends(format.get("elements").get(i), start, i == count - 1 ? ends : List.of()));
                    }
                    at = next;
                }
                out.addAll(at);
            }
            case "or" -> format.get("elements").forEach(element -> out.addAll(ends(element, from, ends)));
            case "optional" -> repeat(format.get("content"), from, 0, 1, ends, out);
            case "star" -> repeat(format.get("content"), from, 0, -1, ends, out);
            case "plus" -> repeat(format.get("content"), from, 1, -1, ends, out);
            case "repeat" -> repeat(format.get("content"), from, format.get("min").intValue(),
                    format.get("max").intValue(), ends, out);
            case "tag" -> tag(format, from, out);
            case "triggered_tags" -> {
                List<String> excluded = strings(format.get("excludes"));
                excluded.addAll(ends);
                boolean stopAfterFirst = format.path("stop_after_first").asBoolean(false);
                if (format.path("at_least_one").asBoolean(false)) {
                    Set<Integer> afterTag = new TreeSet<>();
                    format.get("tags").forEach(tag -> tag(tag, from, afterTag));
                    for (int end : afterTag) {
                        if (stopAfterFirst) {
                            out.add(end);
                        } else {
                            freeText(format, end, excluded, out);
                        }
                    }
                } else {
                    freeText(format, from, excluded, out);
                }
            }
            case "dispatch" -> {
                // As triggered_tags whose triggers are the patterns, each tag its pattern, its format and no end.
                var tags = JSON.createArrayNode();
                var triggers = JSON.createArrayNode();
                for (JsonNode rule : format.get("rules")) {
                    triggers.add(rule.get(0));
                    var tag = JSON.createObjectNode().put("begin", rule.get(0).textValue()).put("end", "");
                    tag.set("content", rule.get(1));
                    // The format's free text at its end runs to the enclosing tag's end, as the rules' text.
                    tag.set("content_ends", JSON.valueToTree(ends));
                    tags.add(tag);
                }
                var triggered = JSON.createObjectNode().put("type", "triggered_tags")
                        .put("stop_after_first", !format.path("loop").asBoolean(true));
                triggered.set("triggers", triggers);
                triggered.set("tags", tags);
                triggered.set("excludes", format.get("excludes"));
                out.addAll(ends(triggered, from, ends));
            }
            case "tags_with_separator" -> {
                String separator = format.get("separator").textValue();
                boolean stopAfterFirst = format.path("stop_after_first").asBoolean(false);
                if (!format.path("at_least_one").asBoolean(false)) {
                    out.add(from);
                }
                Set<Integer> first = new TreeSet<>();
                format.get("tags").forEach(tag -> tag(tag, from, first));
                Set<Integer> at = first;
                Set<Integer> seen = new TreeSet<>();
                while (!at.isEmpty()) {
                    out.addAll(at);
                    if (stopAfterFirst) {
                        break;
                    }
                    Set<Integer> next = new TreeSet<>();
                    for (int start : at) {
                        if (seen.add(start) && text.startsWith(separator, start)) {
                            for (JsonNode tag : format.get("tags")) {
                                tag(tag, start + separator.length(), next);
                            }
                        }
                    }
                    next.removeAll(seen);
                    at = next;
                }
            }
            default -> throw new IllegalArgumentException("no reference for " + type);
        }
        return out;
    }

    /**
     * Free text of triggered_tags from {@code from}: it may end wherever it holds no trigger and no
     * excluded string; where a trigger first appears, a tag whose begin starts with it starts at the
     * trigger, and free text follows it (or nothing, with stop_after_first).
     */
    private void freeText(JsonNode format, int from, List<String> excluded, Set<Integer> out) {
        List<String> triggers = strings(format.get("triggers"));
        boolean stopAfterFirst = format.path("stop_after_first").asBoolean(false);
        List<String> searched = new ArrayList<>(triggers);
        searched.addAll(excluded);
        for (int end = from; end <= text.length(); end++) {
            if (!holdsNone(from, end - 1 < from ? from : end - 1, searched)) {
                break;
            }
            for (String trigger : triggers) {
                int start = end - trigger.length();
                if (start >= from && text.startsWith(trigger, start)) {
                    Set<Integer> afterTag = new TreeSet<>();
                    for (JsonNode tag : format.get("tags")) {
                        if (tag.get("begin").textValue().startsWith(trigger)) {
                            tag(tag, start, afterTag);
                        }
                    }
                    for (int tagEnd : afterTag) {
                        if (stopAfterFirst) {
                            out.add(tagEnd);
                        } else {
                            freeText(format, tagEnd, excluded, out);
                        }
                    }
                }
            }
            if (holdsNone(from, end, searched)) {
                out.add(end);
            }
        }
    }

    private void tag(JsonNode tag, int from, Set<Integer> out) {
        String begin = tag.get("begin").textValue();
        if (!text.startsWith(begin, from)) {
            return;
        }
        JsonNode end = tag.get("end");
        List<String> tagEnds = end.isArray() ? strings(end) : List.of(end.textValue());
        List<String> tail = tag.has("content_ends") ? strings(tag.get("content_ends"))
                : tagEnds.contains("") ? List.of() : tagEnds;
        for (int contentEnd : ends(tag.get("content"), from + begin.length(), tail)) {
            for (String tagEnd : tagEnds) {
                literal(tagEnd, contentEnd, out);
            }
        }
    }

    private void repeat(JsonNode content, int from, int least, int most, List<String> ends, Set<Integer> out) {
        Set<Integer> at = Set.of(from);
        Set<Integer> seen = new TreeSet<>();
        for (int times = 0; !at.isEmpty() && (most < 0 || times <= most); times++) {
            if (times >= least) {
                out.addAll(at);
            }
            Set<Integer> next = new TreeSet<>();
            for (int start : at) {
                if (times < least || seen.add(start)) {
                    next.addAll(ends(content, start, ends));
                }
            }
            at = next;
        }
    }

    private void literal(String value, int from, Set<Integer> out) {
        if (text.startsWith(value, from)) {
            out.add(from + value.length());
        }
    }

    /** Whether text[from, end) holds none of {@code strings}. */
    private boolean holdsNone(int from, int end, List<String> strings) {
        String part = text.substring(from, end);
        return strings.stream().noneMatch(part::contains);
    }

    private static boolean isJson(String schema, String candidate) {
        if (candidate.isEmpty() || Character.isWhitespace(candidate.charAt(0))
                || Character.isWhitespace(candidate.charAt(candidate.length() - 1))) {
            return false;
        }
        try {
            JSON.readTree(candidate);
            return SchemaOracle.errors(schema, candidate).isEmpty();
        } catch (Exception e) {
            return false;
        }
    }

    private static List<String> strings(JsonNode array) {
        List<String> strings = new ArrayList<>();
        if (array != null) {
            array.forEach(element -> strings.add(element.textValue()));
        }
        return strings;
    }
}
