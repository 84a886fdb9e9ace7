package dev.coil.engine.tokenizer;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * The Python {@code str} methods that chat templates call ({@code content.strip()},
 * {@code content.split('</think>')[-1].lstrip('\n')}, {@code role.startswith('tool')}, ...).
 *
 * <p>Jinja evaluates templates against Python objects, so templates written for transformers call Python
 * string methods. Jinjava resolves method calls against Java objects, where most of these names do not exist
 * ({@code startswith}, {@code lstrip}) or mean something else ({@code split} takes a regular expression and
 * returns an array). This resolver sits in front of Jinjava's own and answers calls on strings by their
 * Python semantics; everything else falls through.
 */
final class PythonStringMethods extends ELResolver {

    private static final Object NOT_HANDLED = new Object();

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (!(base instanceof String text) || !(method instanceof String name)) {
            return null;
        }
        Object[] args = params == null ? new Object[0] : params;
        Object result = call(text, name, args);
        if (result == NOT_HANDLED) {
            return null;
        }
        context.setPropertyResolved(true);
        return result;
    }

    private static Object call(String text, String name, Object[] args) {
        return switch (name) {
            case "strip" -> strip(text, charsArgument(args), true, true);
            case "lstrip" -> strip(text, charsArgument(args), true, false);
            case "rstrip" -> strip(text, charsArgument(args), false, true);
            case "startswith" -> args.length == 1 ? matchesAny(args[0], text::startsWith) : NOT_HANDLED;
            case "endswith" -> args.length == 1 ? matchesAny(args[0], text::endsWith) : NOT_HANDLED;
            case "upper" -> text.toUpperCase(Locale.ROOT);
            case "lower" -> text.toLowerCase(Locale.ROOT);
            case "title" -> title(text);
            case "capitalize" -> text.isEmpty() ? text
                    : text.substring(0, 1).toUpperCase(Locale.ROOT) + text.substring(1).toLowerCase(Locale.ROOT);
            case "split" -> split(text, args.length > 0 ? args[0] : null, maxSplit(args));
            case "rsplit" -> rsplit(text, args.length > 0 ? args[0] : null, maxSplit(args));
            case "splitlines" -> splitLines(text);
            case "replace" -> replace(text, args);
            case "find" -> args.length == 1 ? (Object) (long) text.indexOf(String.valueOf(args[0])) : NOT_HANDLED;
            case "rfind" -> args.length == 1 ? (Object) (long) text.lastIndexOf(String.valueOf(args[0])) : NOT_HANDLED;
            case "count" -> args.length == 1 ? (Object) count(text, String.valueOf(args[0])) : NOT_HANDLED;
            case "join" -> args.length == 1 ? join(text, args[0]) : NOT_HANDLED;
            default -> NOT_HANDLED;
        };
    }

    /** Python's str.isspace(): Java whitespace plus the Unicode space separators (no-break spaces). */
    private static boolean isPythonSpace(int c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c);
    }

    private static String charsArgument(Object[] args) {
        return args.length == 0 || args[0] == null ? null : String.valueOf(args[0]);
    }

    /** str.strip([chars]): chars == null strips whitespace. */
    static String strip(String text, String chars, boolean left, boolean right) {
        int start = 0;
        int end = text.length();
        while (left && start < end && stripped(text.charAt(start), chars)) {
            start++;
        }
        while (right && end > start && stripped(text.charAt(end - 1), chars)) {
            end--;
        }
        return text.substring(start, end);
    }

    private static boolean stripped(char c, String chars) {
        return chars == null ? isPythonSpace(c) : chars.indexOf(c) >= 0;
    }

    /** startswith/endswith accept one string or a tuple of them. */
    private static boolean matchesAny(Object candidates, java.util.function.Predicate<String> test) {
        if (candidates instanceof Collection<?> many) {
            for (Object one : many) {
                if (test.test(String.valueOf(one))) {
                    return true;
                }
            }
            return false;
        }
        if (candidates instanceof Object[] many) {
            return matchesAny(List.of(many), test);
        }
        return test.test(String.valueOf(candidates));
    }

    private static String title(String text) {
        StringBuilder out = new StringBuilder(text.length());
        boolean previousCased = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            out.append(previousCased ? Character.toLowerCase(c) : Character.toUpperCase(c));
            previousCased = Character.isLetter(c);
        }
        return out.toString();
    }

    private static int maxSplit(Object[] args) {
        return args.length > 1 && args[1] instanceof Number n ? n.intValue() : -1;
    }

    /** str.split(sep=None, maxsplit=-1): a literal separator, or runs of whitespace when sep is None. */
    static List<String> split(String text, Object separator, int maxSplit) {
        List<String> parts = new ArrayList<>();
        if (separator == null) {
            int i = 0;
            int n = text.length();
            while (true) {
                while (i < n && isPythonSpace(text.charAt(i))) {
                    i++;
                }
                if (i == n) {
                    break;
                }
                if (maxSplit >= 0 && parts.size() == maxSplit) {
                    parts.add(text.substring(i));
                    break;
                }
                int start = i;
                while (i < n && !isPythonSpace(text.charAt(i))) {
                    i++;
                }
                parts.add(text.substring(start, i));
            }
            return parts;
        }
        String sep = String.valueOf(separator);
        if (sep.isEmpty()) {
            throw new IllegalArgumentException("split(): empty separator");
        }
        int start = 0;
        int found;
        while ((maxSplit < 0 || parts.size() < maxSplit) && (found = text.indexOf(sep, start)) >= 0) {
            parts.add(text.substring(start, found));
            start = found + sep.length();
        }
        parts.add(text.substring(start));
        return parts;
    }

    /** str.rsplit(sep, maxsplit): as split, counting splits from the right. */
    static List<String> rsplit(String text, Object separator, int maxSplit) {
        if (maxSplit < 0 || separator == null) {
            return split(text, separator, maxSplit);
        }
        String sep = String.valueOf(separator);
        List<String> parts = new ArrayList<>();
        int end = text.length();
        int found;
        while (parts.size() < maxSplit && (found = text.lastIndexOf(sep, end - sep.length())) >= 0) {
            parts.addFirst(text.substring(found + sep.length(), end));
            end = found;
        }
        parts.addFirst(text.substring(0, end));
        return parts;
    }

    /** str.splitlines(): no empty string after a final line break, and none at all for "". */
    private static List<String> splitLines(String text) {
        List<String> lines = new ArrayList<>(List.of(text.split("\r\n|\r|\n", -1)));
        if (lines.getLast().isEmpty()) {
            lines.removeLast();
        }
        return lines;
    }

    private static Object replace(String text, Object[] args) {
        if (args.length < 2) {
            return NOT_HANDLED;
        }
        String old = String.valueOf(args[0]);
        String replacement = String.valueOf(args[1]);
        int limit = args.length > 2 && args[2] instanceof Number n ? n.intValue() : -1;
        if (limit < 0) {
            return text.replace(old, replacement);
        }
        StringBuilder out = new StringBuilder();
        int start = 0;
        for (int done = 0; done < limit; done++) {
            int found = text.indexOf(old, start);
            if (found < 0) {
                break;
            }
            out.append(text, start, found).append(replacement);
            start = found + old.length();
            if (old.isEmpty()) {
                if (start < text.length()) {
                    out.append(text.charAt(start));
                }
                start++;
            }
        }
        out.append(text, Math.min(start, text.length()), text.length());
        return out.toString();
    }

    private static long count(String text, String sub) {
        if (sub.isEmpty()) {
            return text.length() + 1L;
        }
        long n = 0;
        for (int i = text.indexOf(sub); i >= 0; i = text.indexOf(sub, i + sub.length())) {
            n++;
        }
        return n;
    }

    private static Object join(String separator, Object items) {
        Iterable<?> iterable;
        if (items instanceof Iterable<?> it) {
            iterable = it;
        } else if (items instanceof Object[] array) {
            iterable = List.of(array);
        } else {
            return NOT_HANDLED;
        }
        StringBuilder out = new StringBuilder();
        Iterator<?> iterator = iterable.iterator();
        while (iterator.hasNext()) {
            out.append(iterator.next());
            if (iterator.hasNext()) {
                out.append(separator);
            }
        }
        return out.toString();
    }

    // Property access is left to Jinjava's resolvers.

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}
