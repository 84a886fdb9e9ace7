package dev.coil.engine.runner;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import java.util.stream.Stream;

/**
 * What one value of the output must spell, as {@link JsonSchemaCompiler} reads it from a JSON schema
 * (or a list of choices). Rules compare by identity: a schema's {@code $ref} may make them a cycle.
 */
sealed interface ValueRule {

    /**
     * Text of a structural tag's format that is not one JSON value ({@link StructuralRules}): it may
     * be empty, and starts its own frames.
     */
    non-sealed interface TextRule extends ValueRule {
        /** Adds to {@code out} the frames of this rule's text whose first character is {@code c}, inside {@code parent}. */
        void start(GrammarFrame parent, char c, List<GrammarFrame> out);

        /** Whether the empty text follows this rule. */
        boolean matchesEmpty();
    }

    /** Whether the empty text follows {@code rule} (a JSON value never is empty). */
    static boolean matchesEmpty(ValueRule rule) {
        return switch (rule) {
            case TextRule text -> text.matchesEmpty();
            case RegexRule regex -> regex.automaton.accepts(regex.automaton.start());
            case GrammarRule grammar -> grammar.grammar.matchesEmpty;
            case LiteralRule literal -> literal.texts.contains("");
            case UnionRule union -> union.alternatives.stream().anyMatch(ValueRule::matchesEmpty);
            default -> false;
        };
    }

    /** Any JSON value (the schema {@code true} or {@code {}}). */
    final class AnyValue implements ValueRule {
        static final AnyValue INSTANCE = new AnyValue();

        private AnyValue() {
        }
    }

    /**
     * An object of at least {@code minProperties} and at most {@code maxProperties} keys: the listed
     * properties in their order (an optional one may be left out), then, when {@code additional} is
     * not null, keys of other names whose values follow {@code additional}.
     */
    final class ObjectRule implements ValueRule {
        /** Any object: any keys, any values. */
        static final ObjectRule ANY = new ObjectRule(List.of(), AnyValue.INSTANCE);

        final List<Property> properties;
        final ValueRule additional;
        final int minProperties;
        final int maxProperties;
        /** What an additional key must be, as a JSON string (propertyNames), or null: any. */
        final ValueRule names;
        /** requiredAfter[i]: the required properties at index i or after (counted once, read on every key). */
        private final int[] requiredAfter;

        ObjectRule(List<Property> properties, ValueRule additional) {
            this(properties, additional, 0, Integer.MAX_VALUE, null);
        }

        ObjectRule(List<Property> properties, ValueRule additional, int minProperties, int maxProperties,
                ValueRule names) {
            this.properties = List.copyOf(properties);
            this.additional = additional;
            this.minProperties = minProperties;
            this.maxProperties = maxProperties;
            this.names = names;
            this.requiredAfter = new int[this.properties.size() + 1];
            for (int i = this.properties.size() - 1; i >= 0; i--) {
                requiredAfter[i] = requiredAfter[i + 1] + (this.properties.get(i).required() ? 1 : 0);
            }
        }

        /** The required properties at or after index {@code from}. */
        int requiredFrom(int from) {
            return requiredAfter[from];
        }

        /**
         * Whether an object with {@code count} keys written, the listed properties before {@code next}
         * behind it, can still reach {@code minProperties} and keep to {@code maxProperties} with the
         * properties it must still write: so that the grammar never leads into an object it cannot close.
         */
        boolean keysCanFit(int next, int count) {
            boolean reachesMinimum = additional != null || count + properties.size() - next >= minProperties;
            return reachesMinimum && count + requiredFrom(next) <= maxProperties;
        }

        /** The index of the first required property at or after {@code from}, or the count of properties. */
        int firstRequired(int from) {
            for (int i = from; i < properties.size(); i++) {
                if (properties.get(i).required()) {
                    return i;
                }
            }
            return properties.size();
        }

        /** Whether the object may close once the properties before {@code next} are behind it. */
        boolean mayClose(int next) {
            return firstRequired(next) == properties.size();
        }
    }

    /**
     * One listed property.
     *
     * @param keyText the name as JSON spells it between its quotes (Jackson's escapes)
     */
    record Property(String name, String keyText, ValueRule value, boolean required) {
    }

    /**
     * An array of at least {@code minItems} and at most {@code maxItems} values: the first ones follow
     * {@code prefix}, one rule each, the rest {@code items}.
     */
    final class ArrayRule implements ValueRule {
        static final ArrayRule ANY = new ArrayRule(List.of(), AnyValue.INSTANCE, 0, Integer.MAX_VALUE);

        final List<ValueRule> prefix;
        final ValueRule items;
        final int minItems;
        final int maxItems;
        /** uniqueItems over literals: the items' values, of which each may come once (no prefix then), or null. */
        final LiteralRule distinct;
        /**
         * uniqueItems over strings: the items' rule, held to a pattern (each string spelled one way), whose
         * strings may each come once (no prefix then), or null.
         */
        final StringRule distinctStrings;
        /** uniqueItems over numbers (integers or not): each value may come once (no prefix then). */
        final boolean distinctNumbers;
        /** The items' rule without the strings already written, by those strings (the last few lists). */
        private final Map<List<String>, ValueRule> withoutWritten = Collections.synchronizedMap(
                new LinkedHashMap<>(16, 0.75f, true) {
                    @Override
                    protected boolean removeEldestEntry(Map.Entry<List<String>, ValueRule> eldest) {
                        return size() > 256;
                    }
                });

        ArrayRule(List<ValueRule> prefix, ValueRule items, int minItems, int maxItems) {
            this(prefix, items, minItems, maxItems, null, null, false);
        }

        ArrayRule(List<ValueRule> prefix, ValueRule items, int minItems, int maxItems, LiteralRule distinct,
                StringRule distinctStrings, boolean distinctNumbers) {
            this.prefix = List.copyOf(prefix);
            this.items = items;
            this.minItems = minItems;
            this.maxItems = maxItems;
            this.distinct = distinct;
            this.distinctStrings = distinctStrings;
            this.distinctNumbers = distinctNumbers;
        }

        /** Whether the array's frames keep the items written, to compare the next ones with (uniqueItems). */
        boolean keepsWritten() {
            return distinct != null || distinctStrings != null || distinctNumbers;
        }

        /** The rule of the value at {@code index} (0 the first). */
        ValueRule itemAt(int index) {
            return index < prefix.size() ? prefix.get(index) : items;
        }

        /**
         * The rule of the next value after {@code used} (distinct items: the values not written yet; their
         * texts, or for strings their characters).
         */
        ValueRule nextItem(int index, List<String> used) {
            if (distinctStrings != null) {
                return withoutWritten.computeIfAbsent(used, written -> distinctStrings.without(Set.copyOf(written)));
            }
            if (distinct == null) {
                return itemAt(index);
            }
            return new LiteralRule(distinct.texts.stream().filter(text -> !used.contains(text)).toList());
        }
    }

    /**
     * A string of {@code minLength} to {@code maxLength} characters (code points; an escape is one), and,
     * when {@code pattern} is not null, one its pattern matches whole (the bounds then held inside it).
     */
    final class StringRule implements ValueRule {
        static final StringRule ANY = new StringRule(0, Integer.MAX_VALUE, null);

        final int minLength;
        final int maxLength;
        final RegexAutomaton pattern;

        StringRule(int minLength, int maxLength, RegexAutomaton pattern) {
            this.minLength = minLength;
            this.maxLength = maxLength;
            this.pattern = pattern;
        }

        /**
         * The same strings but {@code texts} (as read, escapes undone), spelled as a pattern's strings are
         * (each character one way); a rule of no string when none is left.
         */
        ValueRule without(Set<String> texts) {
            RegexAutomaton left = patterned().pattern.without(texts);
            return left == null ? new LiteralRule(List.of()) : new StringRule(minLength, maxLength, left);
        }

        /** The same strings, held to a pattern (any characters within the bounds where there was none). */
        StringRule patterned() {
            return pattern != null ? this
                    : new StringRule(minLength, maxLength, RegexAutomaton.compile("[\\s\\S]*", minLength, maxLength));
        }
    }

    /** Text (not JSON) that a regular expression matches whole, written as it is: vLLM's regex outputs. */
    final class RegexRule implements ValueRule {
        final RegexAutomaton automaton;

        RegexRule(RegexAutomaton automaton) {
            this.automaton = automaton;
        }
    }

    /** Text a context-free grammar (GBNF, {@link ContextFreeGrammar}) holds, written as it is. */
    final class GrammarRule implements ValueRule {
        final ContextFreeGrammar grammar;

        GrammarRule(ContextFreeGrammar grammar) {
            this.grammar = grammar;
        }
    }

    /**
     * A JSON number; with {@code integer}, one without a fraction or an exponent, and then optionally
     * within {@code minimum} and {@code maximum} (inclusive; null: no bound) and a multiple of
     * {@code step} (null: any); otherwise optionally within {@code decimal}.
     */
    final class NumberRule implements ValueRule {
        static final NumberRule NUMBER = new NumberRule(false, null, null, null);
        static final NumberRule INTEGER = new NumberRule(true, null, null, null);

        final boolean integer;
        final BigInteger minimum;
        final BigInteger maximum;
        /** An integer's multipleOf as the least positive integer multiple of it (greater than 1), or null. */
        final BigInteger step;
        /** A number's (not an integer's) bounds, or null; such a number is written without an exponent. */
        final DecimalBounds decimal;

        NumberRule(boolean integer, BigInteger minimum, BigInteger maximum, DecimalBounds decimal) {
            this(integer, minimum, maximum, null, decimal);
        }

        NumberRule(boolean integer, BigInteger minimum, BigInteger maximum, BigInteger step, DecimalBounds decimal) {
            this.integer = integer;
            this.minimum = minimum;
            this.maximum = maximum;
            this.step = step;
            this.decimal = decimal;
        }

        /** Whether the number has bounds, so that its frames keep its text. */
        boolean bounded() {
            return minimum != null || maximum != null || step != null || decimal != null;
        }

        /** Whether a number whose text starts with {@code typed} can still end within the bounds. */
        boolean mayReach(String typed, int maxDigits) {
            return decimal != null ? decimal.reachable(typed, maxDigits) : reachable(typed, maxDigits);
        }

        /** Whether the whole number {@code text} lies within the bounds. */
        boolean holds(String text) {
            return decimal != null ? decimal.within(new BigDecimal(text)) : within(new BigInteger(text));
        }

        boolean within(BigInteger value) {
            return (minimum == null || value.compareTo(minimum) >= 0)
                    && (maximum == null || value.compareTo(maximum) <= 0)
                    && (step == null || value.mod(step).signum() == 0);
        }

        /**
         * Whether an integer whose text starts with {@code typed} ("-", "-12", "7") can still end within the
         * bounds, given at most {@code maxDigits} digits: each digit more multiplies what is typed by ten and
         * adds 0 to 9, so the reachable values with k digits more form one interval.
         */
        boolean reachable(String typed, int maxDigits) {
            if (isZero(typed)) {
                return within(BigInteger.ZERO);
            }
            return intervals(typed, maxDigits).anyMatch(range -> intersects(range[0], range[1]));
        }

        /**
         * Whether an integer whose text starts with {@code typed} ("-", "-0", "12") can still end within
         * the bounds, given at most {@code maxDigits} digits, as one none of {@code written} (canonical
         * texts of integers within the bounds) is: the integers it may still end as, one interval for
         * each count of digits more, outnumber the written ones among them.
         */
        boolean reachableUnwritten(String typed, int maxDigits, List<String> written) {
            if (isZero(typed)) {
                return within(BigInteger.ZERO) && !written.contains("0");
            }
            // More integers to end as than the array holds: some is not written (the usual case, no count of
            // the written ones needed); else the written ones within the intervals are counted.
            BigInteger ways = BigInteger.ZERO;
            BigInteger held = BigInteger.valueOf(written.size());
            for (BigInteger[] range : (Iterable<BigInteger[]>) intervals(typed, maxDigits)::iterator) {
                ways = ways.add(count(range[0], range[1]));
                if (ways.compareTo(held) > 0) {
                    return true;
                }
            }
            List<BigInteger[]> ranges = intervals(typed, maxDigits).toList();
            long taken = written.stream().map(BigInteger::new).filter(value -> ranges.stream().anyMatch(
                    range -> value.compareTo(range[0]) >= 0 && value.compareTo(range[1]) <= 0)).count();
            return ways.compareTo(BigInteger.valueOf(taken)) > 0;
        }

        /** Whether an integer's text so far is 0 or -0, which takes no digit more. */
        private static boolean isZero(String typed) {
            return typed.equals("0") || typed.equals("-0");
        }

        /**
         * The intervals [low, high] of the integers a text other than 0 or -0 ("-", "-12", "7") may still
         * end as, one for each count of digits more up to {@code maxDigits}, made as they are asked for.
         */
        private static Stream<BigInteger[]> intervals(String typed, int maxDigits) {
            boolean negative = typed.startsWith("-");
            String digits = negative ? typed.substring(1) : typed;
            if (digits.isEmpty()) { // "-": any negative integer of up to maxDigits digits
                return Stream.<BigInteger[]>of(new BigInteger[] {
                        BigInteger.TEN.pow(maxDigits).subtract(BigInteger.ONE).negate(), BigInteger.ONE.negate()});
            }
            BigInteger prefix = new BigInteger(digits);
            return IntStream.rangeClosed(0, maxDigits - digits.length()).mapToObj(more -> {
                BigInteger scale = BigInteger.TEN.pow(more);
                BigInteger low = prefix.multiply(scale);
                BigInteger high = prefix.add(BigInteger.ONE).multiply(scale).subtract(BigInteger.ONE);
                return negative ? new BigInteger[] {high.negate(), low.negate()} : new BigInteger[] {low, high};
            });
        }

        /**
         * Whether a number (not an integer) whose text starts with {@code typed} can still end within
         * the bounds as a value none of {@code written} (canonical texts, {@link #canonical}) is. With
         * bounds ({@link DecimalBounds#reachableUnwritten}) it is written without an exponent; without,
         * a mantissa that may still grow reaches more values than an array holds, and once its digits
         * or an exponent fix it, its exponents are tried one by one.
         */
        boolean reachableUnwrittenNumber(String typed, int maxDigits, int maxExponentDigits, List<String> written) {
            if (decimal != null) {
                return decimal.reachableUnwritten(typed, maxDigits, written);
            }
            int e = Math.max(typed.indexOf('e'), typed.indexOf('E'));
            String mantissa = e < 0 ? typed : typed.substring(0, e);
            int point = mantissa.indexOf('.');
            boolean fixed = e >= 0 || (point >= 0 && mantissa.length() - point - 1 >= maxDigits);
            if (!fixed) {
                return true;
            }
            BigDecimal value = new BigDecimal(mantissa);
            if (value.signum() == 0) { // 0 whatever its exponent
                return !written.contains("0");
            }
            String exponent = e < 0 ? "" : typed.substring(e + 1);
            List<String> signs = exponent.startsWith("+") || exponent.startsWith("-") ? List.of(exponent.substring(0, 1))
                    : e < 0 || exponent.isEmpty() ? List.of("", "-") : List.of("");
            String digits = exponent.replaceFirst("^[+-]", "");
            if (e < 0) {
                if (!written.contains(canonical(value.toPlainString()))) {
                    return true; // the mantissa alone
                }
            }
            for (String sign : signs) {
                for (int more = 0; digits.length() + more <= maxExponentDigits; more++) {
                    int count = (int) Math.pow(10, more);
                    for (int suffix = 0; suffix < count; suffix++) {
                        String power = digits + (more == 0 ? "" : String.format("%0" + more + "d", suffix));
                        if (power.isEmpty()) {
                            continue;
                        }
                        String text = canonical(value.scaleByPowerOfTen(Integer.parseInt(sign + power)).toString());
                        if (!written.contains(text)) {
                            return true;
                        }
                    }
                }
            }
            return false;
        }

        /** A number's text as a distinct array compares it: its value with no trailing zeros (-0 is 0). */
        static String canonical(String text) {
            BigDecimal value = new BigDecimal(text);
            return value.signum() == 0 ? "0" : value.stripTrailingZeros().toString();
        }

        /**
         * How many values within the bounds, of at most {@code maxDigits} digits (each side of the point,
         * for a number), there are (at most cap; cap for a number without bounds).
         */
        long countUpTo(int maxDigits, long cap) {
            if (!integer) {
                return decimal != null ? decimal.countUpTo(maxDigits, cap) : cap;
            }
            BigInteger most = BigInteger.TEN.pow(maxDigits).subtract(BigInteger.ONE);
            return count(most.negate(), most).min(BigInteger.valueOf(cap)).longValueExact();
        }

        /** How many integers of [low, high] lie within the bounds (multiples of step, where it is given). */
        private BigInteger count(BigInteger low, BigInteger high) {
            BigInteger lower = minimum == null ? low : low.max(minimum);
            BigInteger upper = maximum == null ? high : high.min(maximum);
            if (lower.compareTo(upper) > 0) {
                return BigInteger.ZERO;
            }
            if (step == null) {
                return upper.subtract(lower).add(BigInteger.ONE);
            }
            // Multiples of step in [lower, upper]: floor(upper / step) - ceil(lower / step) + 1.
            BigInteger first = floorDivide(lower.add(step).subtract(BigInteger.ONE), step);
            return floorDivide(upper, step).subtract(first).add(BigInteger.ONE).max(BigInteger.ZERO);
        }

        private static BigInteger floorDivide(BigInteger value, BigInteger positive) {
            return value.subtract(value.mod(positive)).divide(positive);
        }

        /** Whether [low, high] holds an integer within the bounds (a multiple of step, where it is given). */
        boolean intersects(BigInteger low, BigInteger high) {
            return count(low, high).signum() > 0;
        }
    }

    /** Exactly one of these texts (an enum's values as JSON spells them, or a list of choices). */
    final class LiteralRule implements ValueRule {
        static final LiteralRule BOOLEAN = new LiteralRule(List.of("true", "false"));
        static final LiteralRule NULL = new LiteralRule(List.of("null"));
        static final LiteralRule TRUE_FALSE_NULL = new LiteralRule(List.of("true", "false", "null"));

        final List<String> texts;

        LiteralRule(List<String> texts) {
            this.texts = List.copyOf(texts);
        }
    }

    /** A value that follows any one of the alternatives (anyOf, oneOf, a list of types). */
    final class UnionRule implements ValueRule {
        final List<ValueRule> alternatives;

        UnionRule(List<ValueRule> alternatives) {
            this.alternatives = List.copyOf(alternatives);
        }
    }

    /** A {@code $ref}, whose target is set once it is compiled (it may hold this reference itself). */
    final class Reference implements ValueRule {
        final String pointer;
        ValueRule target;

        Reference(String pointer) {
            this.pointer = pointer;
        }
    }
}
