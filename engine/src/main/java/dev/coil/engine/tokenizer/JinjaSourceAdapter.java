package dev.coil.engine.tokenizer;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * Rewrites Jinja template source where Jinjava parses the same text differently from Jinja, in the ways
 * chat templates in the wild depend on. Each rewrite gives Jinjava text that Jinja would render the same:
 * <ol>
 *   <li>One newline at the very end of the template is dropped (Jinja's {@code keep_trailing_newline=False};
 *       Jinjava keeps it).
 *   <li>{@code seq[::-1]} becomes {@code seq|reverse}: Jinjava parses slices without a step only, and
 *       reversal is the stepped slice templates use.
 *   <li>Keyword arguments get parentheses: {@code namespace(last=messages|length - 1)} becomes
 *       {@code namespace(last=(messages|length - 1))}. Jinjava binds {@code name=value} tighter than the
 *       arithmetic around it, so the unparenthesised form subtracts 1 from a named-parameter object.
 * </ol>
 * Text outside {@code {{ }}} and {@code {% %}} is never touched; neither are string literals or macro
 * definitions (whose defaults Jinjava parses itself).
 */
final class JinjaSourceAdapter {

    private JinjaSourceAdapter() {
    }

    static String adapt(String template) {
        String source = template.endsWith("\n") ? template.substring(0, template.length() - 1) : template;
        StringBuilder out = new StringBuilder(source.length() + 16);
        int i = 0;
        while (i < source.length()) {
            int open = nextExpressionStart(source, i);
            if (open < 0) {
                out.append(source, i, source.length());
                break;
            }
            out.append(source, i, open + 2);
            int end = expressionEnd(source, open + 2);
            String expression = source.substring(open + 2, end);
            boolean macroDefinition = source.charAt(open + 1) == '%'
                    && expression.stripLeading().replaceFirst("^-\\s*", "").startsWith("macro ");
            out.append(macroDefinition ? expression : adaptExpression(expression));
            i = end;
        }
        return out.toString();
    }

    /** Index of the next "{{" or "{%", skipping {# comments #}; -1 when there is none. */
    private static int nextExpressionStart(String source, int from) {
        int i = from;
        while (true) {
            int brace = source.indexOf('{', i);
            if (brace < 0 || brace + 1 >= source.length()) {
                return -1;
            }
            char next = source.charAt(brace + 1);
            if (next == '{' || next == '%') {
                return brace;
            }
            if (next == '#') {
                int close = source.indexOf("#}", brace + 2);
                if (close < 0) {
                    return -1;
                }
                i = close + 2;
            } else {
                i = brace + 1;
            }
        }
    }

    /** Index of the "}}" or "%}" that closes an expression starting at {@code from}, outside string literals. */
    private static int expressionEnd(String source, int from) {
        int i = from;
        while (i < source.length()) {
            char c = source.charAt(i);
            if (c == '\'' || c == '"') {
                i = stringEnd(source, i);
                continue;
            }
            if ((c == '}' || c == '%') && i + 1 < source.length() && source.charAt(i + 1) == '}') {
                return i;
            }
            i++;
        }
        return source.length();
    }

    /** Index just past the string literal opening at {@code start}. */
    private static int stringEnd(String source, int start) {
        char quote = source.charAt(start);
        int i = start + 1;
        while (i < source.length() && source.charAt(i) != quote) {
            i += source.charAt(i) == '\\' ? 2 : 1;
        }
        return Math.min(i + 1, source.length());
    }

    /** One bracket level of an expression: whether it is a call's argument list, and whether a kwarg is open. */
    private static final class Bracket {
        final char close;
        final boolean call;
        boolean keywordValueOpen;

        Bracket(char close, boolean call) {
            this.close = close;
            this.call = call;
        }
    }

    static String adaptExpression(String expression) {
        String reversed = expression.replaceAll("\\[\\s*::\\s*-1\\s*]", "|reverse");
        StringBuilder out = new StringBuilder(reversed.length() + 8);
        Deque<Bracket> brackets = new ArrayDeque<>();
        int i = 0;
        while (i < reversed.length()) {
            char c = reversed.charAt(i);
            if (c == '\'' || c == '"') {
                int end = stringEnd(reversed, i);
                out.append(reversed, i, end);
                i = end;
                continue;
            }
            switch (c) {
                case '(' -> brackets.push(new Bracket(')', endsWithCallee(out)));
                case '[' -> brackets.push(new Bracket(']', false));
                case '{' -> brackets.push(new Bracket('}', false));
                case ')', ']', '}', ',' -> {
                    Bracket top = brackets.peek();
                    if (top != null && top.keywordValueOpen && (c == ',' || c == top.close)) {
                        out.append(')');
                        top.keywordValueOpen = false;
                    }
                    if (top != null && c == top.close) {
                        brackets.pop();
                    }
                }
                default -> {
                }
            }
            out.append(c);
            i++;
            Bracket top = brackets.peek();
            if ((c == '(' || c == ',') && top != null && top.call) {
                int afterName = keywordArgumentValueStart(reversed, i);
                if (afterName > 0) {
                    out.append(reversed, i, afterName).append('(');
                    top.keywordValueOpen = true;
                    i = afterName;
                }
            }
        }
        return out.toString();
    }

    /** Whether the text before a "(" names something called: an identifier, a closing bracket. */
    private static boolean endsWithCallee(StringBuilder out) {
        if (out.isEmpty()) {
            return false;
        }
        char last = out.charAt(out.length() - 1);
        return Character.isLetterOrDigit(last) || last == '_' || last == ')' || last == ']';
    }

    /**
     * When the argument starting at {@code from} is {@code name=value} (not {@code name == value}), the index
     * just past its "="; otherwise -1.
     */
    private static int keywordArgumentValueStart(String expression, int from) {
        int i = from;
        while (i < expression.length() && Character.isWhitespace(expression.charAt(i))) {
            i++;
        }
        int nameStart = i;
        while (i < expression.length()
                && (Character.isLetterOrDigit(expression.charAt(i)) || expression.charAt(i) == '_')) {
            i++;
        }
        if (i == nameStart || Character.isDigit(expression.charAt(nameStart))) {
            return -1;
        }
        while (i < expression.length() && Character.isWhitespace(expression.charAt(i))) {
            i++;
        }
        boolean assignment = i < expression.length() && expression.charAt(i) == '='
                && (i + 1 >= expression.length() || expression.charAt(i + 1) != '=');
        return assignment ? i + 1 : -1;
    }
}
