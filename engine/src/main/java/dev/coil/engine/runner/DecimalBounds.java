package dev.coil.engine.runner;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.RoundingMode;
import java.util.List;
import java.util.stream.IntStream;
import java.util.stream.Stream;

/**
 * The bounds of a JSON number that need not be an integer (JSON Schema's {@code minimum},
 * {@code maximum}, {@code exclusiveMinimum}, {@code exclusiveMaximum}, and {@code multipleOf}), and
 * which numbers a text that starts one can still end as. Such a number is written without an
 * exponent, so that what its digits can reach is one interval per count of digits still to come; with
 * {@code multipleOf}, an interval counts when a multiple lies in it (a multiple has no more places
 * after the point than {@code multipleOf}, which the compiler keeps within what a number may write).
 *
 * @param minimum the lower bound, or null
 * @param maximum the upper bound, or null
 * @param multipleOf what the number must be a whole multiple of (greater than 0), or null
 */
record DecimalBounds(BigDecimal minimum, boolean minimumExclusive, BigDecimal maximum, boolean maximumExclusive,
        BigDecimal multipleOf) {

    /** No bound at all. */
    static final DecimalBounds NONE = new DecimalBounds(null, false, null, false);

    /** Bounds without a multipleOf. */
    DecimalBounds(BigDecimal minimum, boolean minimumExclusive, BigDecimal maximum, boolean maximumExclusive) {
        this(minimum, minimumExclusive, maximum, maximumExclusive, null);
    }

    /** These bounds with {@code step} as their multipleOf (null: none). */
    DecimalBounds withMultipleOf(BigDecimal step) {
        return new DecimalBounds(minimum, minimumExclusive, maximum, maximumExclusive, step);
    }

    /** Whether no number lies within the bounds (a multiple of multipleOf, where it is given). */
    boolean empty() {
        if (minimum == null || maximum == null) {
            return false;
        }
        return !meets(minimum, !minimumExclusive, maximum, !maximumExclusive);
    }

    /** The least integer the lower bound allows, or null without one. */
    BigInteger integerMinimum() {
        if (minimum == null) {
            return null;
        }
        BigInteger least = minimum.setScale(0, RoundingMode.CEILING).toBigIntegerExact();
        return minimumExclusive && minimum.compareTo(new BigDecimal(least)) == 0 ? least.add(BigInteger.ONE) : least;
    }

    /** The greatest integer the upper bound allows, or null without one. */
    BigInteger integerMaximum() {
        if (maximum == null) {
            return null;
        }
        BigInteger greatest = maximum.setScale(0, RoundingMode.FLOOR).toBigIntegerExact();
        return maximumExclusive && maximum.compareTo(new BigDecimal(greatest)) == 0
                ? greatest.subtract(BigInteger.ONE) : greatest;
    }

    /** Whether {@code value} lies within the bounds (and is a multiple of multipleOf, where it is given). */
    boolean within(BigDecimal value) {
        boolean above = minimum == null || value.compareTo(minimum) > 0
                || (!minimumExclusive && value.compareTo(minimum) == 0);
        boolean below = maximum == null || value.compareTo(maximum) < 0
                || (!maximumExclusive && value.compareTo(maximum) == 0);
        return above && below && (multipleOf == null || value.remainder(multipleOf).signum() == 0);
    }

    /**
     * Whether a number whose text starts with {@code typed} ("-", "12", "-0.5", "3.") can still end
     * within the bounds, with at most {@code maxDigits} digits before the point and after it.
     */
    boolean reachable(String typed, int maxDigits) {
        BigDecimal fixed = fixedValue(typed, maxDigits);
        if (fixed != null) {
            return within(fixed);
        }
        boolean negative = typed.startsWith("-");
        return spans(typed, maxDigits).anyMatch(span -> span(negative, span[0], span[1]));
    }

    /**
     * {@link #reachable}, and as a value none of {@code written} is (canonical texts of values within
     * the bounds, {@link ValueRule.NumberRule#canonical}): the values the text may still end as, those
     * of at most {@code maxDigits} places (multiples of multipleOf, where it is given) in each of its
     * intervals, outnumber the written ones among them.
     */
    boolean reachableUnwritten(String typed, int maxDigits, List<String> written) {
        BigDecimal fixed = fixedValue(typed, maxDigits);
        if (fixed != null) {
            return within(fixed) && !written.contains(ValueRule.NumberRule.canonical(fixed.toPlainString()));
        }
        boolean negative = typed.startsWith("-");
        // More values to end as than the array holds: some is not written (the usual case); else the
        // written values within the spans are counted against them.
        BigDecimal unit = multipleOf != null ? multipleOf : BigDecimal.ONE.movePointLeft(maxDigits);
        BigInteger ways = BigInteger.ZERO;
        BigInteger held = BigInteger.valueOf(written.size());
        for (BigDecimal[] span : (Iterable<BigDecimal[]>) spans(typed, maxDigits)::iterator) {
            ways = ways.add(negative ? count(span[1].negate(), false, span[0].negate(), true, unit)
                    : count(span[0], true, span[1], false, unit));
            if (ways.compareTo(held) > 0) {
                return true;
            }
        }
        List<BigDecimal[]> spans = spans(typed, maxDigits).toList();
        long taken = written.stream().map(BigDecimal::new).map(value -> negative ? value.negate() : value)
                .filter(unsignedValue -> unsignedValue.signum() >= 0 && spans.stream().anyMatch( // 0 either way
                        span -> unsignedValue.compareTo(span[0]) >= 0 && unsignedValue.compareTo(span[1]) < 0))
                .count();
        return ways.compareTo(BigInteger.valueOf(taken)) > 0;
    }

    /** The value of a text that takes no digit more (maxDigits places after its point typed), or null. */
    private static BigDecimal fixedValue(String typed, int maxDigits) {
        int point = typed.indexOf('.');
        return point >= 0 && typed.length() - point - 1 >= maxDigits ? new BigDecimal(typed) : null;
    }

    /**
     * The intervals [low, high), before the sign, within which a text that is not fixed may still end,
     * made as they are asked for: fraction digits to come add less than one unit of the last place typed
     * (of the ones, right after the point; zeros keep the value as typed); whole digits to come, one
     * interval for each count of them.
     */
    private static Stream<BigDecimal[]> spans(String typed, int maxDigits) {
        String unsigned = typed.startsWith("-") ? typed.substring(1) : typed;
        int point = unsigned.indexOf('.');
        String whole = point < 0 ? unsigned : unsigned.substring(0, point);
        if (whole.isEmpty()) { // "-": zero (as -0) down to just above -10^maxDigits
            return Stream.<BigDecimal[]>of(new BigDecimal[] {BigDecimal.ZERO, BigDecimal.TEN.pow(maxDigits)});
        }
        BigDecimal digits = new BigDecimal(unsigned.endsWith(".") ? whole : unsigned);
        if (point >= 0) {
            int fraction = unsigned.length() - point - 1;
            return Stream.<BigDecimal[]>of(new BigDecimal[] {digits, digits.add(BigDecimal.ONE.movePointLeft(fraction))});
        }
        if (whole.equals("0")) { // 0 itself, or 0.x
            return Stream.<BigDecimal[]>of(new BigDecimal[] {BigDecimal.ZERO, BigDecimal.ONE});
        }
        return IntStream.rangeClosed(0, maxDigits - whole.length()).mapToObj(
                more -> new BigDecimal[] {digits.movePointRight(more), digits.add(BigDecimal.ONE).movePointRight(more)});
    }

    /**
     * How many multiples of {@code unit} lie within both the interval from {@code low} to {@code high}
     * (each end closed or open) and the bounds.
     */
    private BigInteger count(BigDecimal low, boolean lowClosed, BigDecimal high, boolean highClosed, BigDecimal unit) {
        Interval clipped = clip(low, lowClosed, high, highClosed);
        BigDecimal first = clipped.lower.divide(unit, 0, RoundingMode.CEILING);
        if (!clipped.lowerClosed && first.multiply(unit).compareTo(clipped.lower) == 0) {
            first = first.add(BigDecimal.ONE);
        }
        BigDecimal last = clipped.upper.divide(unit, 0, RoundingMode.FLOOR);
        if (!clipped.upperClosed && last.multiply(unit).compareTo(clipped.upper) == 0) {
            last = last.subtract(BigDecimal.ONE);
        }
        return last.subtract(first).add(BigDecimal.ONE).max(BigDecimal.ZERO).toBigIntegerExact();
    }

    /** How many values within the bounds, of at most {@code maxDigits} digits each side of the point, there are (at most cap). */
    long countUpTo(int maxDigits, long cap) {
        BigDecimal most = BigDecimal.TEN.pow(maxDigits);
        BigDecimal unit = multipleOf != null ? multipleOf : BigDecimal.ONE.movePointLeft(maxDigits);
        return count(most.negate(), false, most, false, unit).min(BigInteger.valueOf(cap)).longValueExact();
    }

    /** Whether [low, high) (negated when {@code negative}: (-high, -low]) meets the bounds. */
    private boolean span(boolean negative, BigDecimal low, BigDecimal high) {
        return negative ? meets(high.negate(), false, low.negate(), true) : meets(low, true, high, false);
    }

    /**
     * Whether the interval from {@code low} to {@code high} (each end closed or open) meets the bounds:
     * where they cross, at a multiple of multipleOf when it is given.
     */
    private boolean meets(BigDecimal low, boolean lowClosed, BigDecimal high, boolean highClosed) {
        Interval clipped = clip(low, lowClosed, high, highClosed);
        BigDecimal lower = clipped.lower;
        boolean lowerClosed = clipped.lowerClosed;
        BigDecimal upper = clipped.upper;
        boolean upperClosed = clipped.upperClosed;
        if (multipleOf != null) {
            // The least multiple at or above the lower end (above it, when that end is open).
            BigDecimal least = lower.divide(multipleOf, 0, RoundingMode.CEILING).multiply(multipleOf);
            if (least.compareTo(lower) == 0 && !lowerClosed) {
                least = least.add(multipleOf);
            }
            lower = least;
            lowerClosed = true;
        }
        int order = lower.compareTo(upper);
        return order < 0 || (order == 0 && lowerClosed && upperClosed);
    }

    /** An interval from lower to upper, each end closed or open. */
    private record Interval(BigDecimal lower, boolean lowerClosed, BigDecimal upper, boolean upperClosed) {
    }

    /** The interval from {@code low} to {@code high} (each end closed or open) cut to the bounds. */
    private Interval clip(BigDecimal low, boolean lowClosed, BigDecimal high, boolean highClosed) {
        BigDecimal lower = low;
        boolean lowerClosed = lowClosed;
        if (minimum != null && (minimum.compareTo(lower) > 0
                || (minimum.compareTo(lower) == 0 && minimumExclusive))) {
            lower = minimum;
            lowerClosed = !minimumExclusive;
        }
        BigDecimal upper = high;
        boolean upperClosed = highClosed;
        if (maximum != null && (maximum.compareTo(upper) < 0
                || (maximum.compareTo(upper) == 0 && maximumExclusive))) {
            upper = maximum;
            upperClosed = !maximumExclusive;
        }
        return new Interval(lower, lowerClosed, upper, upperClosed);
    }
}
