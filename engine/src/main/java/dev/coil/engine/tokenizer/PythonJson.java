package dev.coil.engine.tokenizer;

import java.math.BigDecimal;
import java.util.Map;
import java.util.TreeMap;

/**
 * JSON text exactly as Python's {@code json.dumps(value, ensure_ascii=False, indent=indent)} writes it, which
 * is what transformers' {@code tojson} template filter produces: ", " and ": " separators on one line, or
 * newlines and {@code indent} spaces per level with "," and ": "; non-ASCII characters kept as they are;
 * floats in Python's repr. Templates put tool schemas into prompts with it, so the spacing reaches the model.
 */
final class PythonJson {

    private PythonJson() {
    }

    /**
     * @param indent null for one line, otherwise spaces per nesting level
     * @param sortKeys order object keys (json.dumps' sort_keys)
     */
    static String dumps(Object value, Integer indent, boolean sortKeys) {
        StringBuilder out = new StringBuilder();
        write(out, value, indent, sortKeys, 0);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value, Integer indent, boolean sortKeys, int depth) {
        switch (value) {
            case null -> out.append("null");
            case Boolean b -> out.append(b ? "true" : "false");
            case Double d -> out.append(pythonFloat(d));
            case Float f -> out.append(pythonFloat(f));
            case BigDecimal d -> out.append(pythonFloat(d.doubleValue()));
            case Number n -> out.append(n);
            case CharSequence s -> writeString(out, s.toString());
            case Map<?, ?> map -> writeObject(out, map, indent, sortKeys, depth);
            case Iterable<?> items -> writeArray(out, items, indent, sortKeys, depth);
            case Object[] items -> writeArray(out, java.util.Arrays.asList(items), indent, sortKeys, depth);
            default -> writeString(out, value.toString());
        }
    }

    private static void writeObject(StringBuilder out, Map<?, ?> map, Integer indent, boolean sortKeys, int depth) {
        if (map.isEmpty()) {
            out.append("{}");
            return;
        }
        Map<?, ?> ordered = map;
        if (sortKeys) {
            TreeMap<String, Object> sorted = new TreeMap<>();
            map.forEach((k, v) -> sorted.put(String.valueOf(k), v));
            ordered = sorted;
        }
        out.append('{');
        boolean first = true;
        for (Map.Entry<?, ?> entry : ordered.entrySet()) {
            separator(out, first, indent, depth + 1);
            first = false;
            writeString(out, String.valueOf(entry.getKey()));
            out.append(": ");
            write(out, entry.getValue(), indent, sortKeys, depth + 1);
        }
        closing(out, indent, depth);
        out.append('}');
    }

    private static void writeArray(StringBuilder out, Iterable<?> items, Integer indent, boolean sortKeys, int depth) {
        if (!items.iterator().hasNext()) {
            out.append("[]");
            return;
        }
        out.append('[');
        boolean first = true;
        for (Object item : items) {
            separator(out, first, indent, depth + 1);
            first = false;
            write(out, item, indent, sortKeys, depth + 1);
        }
        closing(out, indent, depth);
        out.append(']');
    }

    private static void separator(StringBuilder out, boolean first, Integer indent, int depth) {
        if (indent == null) {
            if (!first) {
                out.append(", ");
            }
            return;
        }
        if (!first) {
            out.append(',');
        }
        out.append('\n').append(" ".repeat(indent * depth));
    }

    private static void closing(StringBuilder out, Integer indent, int depth) {
        if (indent != null) {
            out.append('\n').append(" ".repeat(indent * depth));
        }
    }

    private static void writeString(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /** Python's float repr: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
    static String pythonFloat(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        if (d == 0) {
            return (1 / d < 0) ? "-0.0" : "0.0";
        }
        BigDecimal exact = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        String digits = exact.unscaledValue().abs().toString();
        int exponent = digits.length() - 1 - exact.scale();
        String sign = d < 0 ? "-" : "";
        if (exponent >= -4 && exponent < 16) {
            String plain = exact.abs().toPlainString();
            return sign + (plain.contains(".") ? plain : plain + ".0");
        }
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        String exponentText = String.format("%02d", Math.abs(exponent));
        return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + exponentText;
    }
}
