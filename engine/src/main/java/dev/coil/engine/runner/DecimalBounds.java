package dev.coil.engine.runner;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.RoundingMode;

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
        boolean negative = typed.startsWith("-");
        String unsigned = negative ? typed.substring(1) : typed;
        int point = unsigned.indexOf('.');
        String whole = point < 0 ? unsigned : unsigned.substring(0, point);
        if (whole.isEmpty()) { // "-": zero (as -0) down to just above -10^maxDigits
            return meets(BigDecimal.TEN.pow(maxDigits).negate(), false, BigDecimal.ZERO, true);
        }
        BigDecimal digits = new BigDecimal(unsigned.endsWith(".") ? whole : unsigned);
        if (point >= 0) {
            // Fraction digits to come add less than one unit of the last place typed (of the ones,
            // right after the point); zeros keep the value as typed.
            int fraction = unsigned.length() - point - 1;
            if (fraction >= maxDigits) {
                return within(negative ? digits.negate() : digits);
            }
            return span(negative, digits, digits.add(BigDecimal.ONE.movePointLeft(fraction)));
        }
        if (whole.equals("0")) { // 0 itself, or 0.x
            return span(negative, BigDecimal.ZERO, BigDecimal.ONE);
        }
        for (int more = 0; whole.length() + more <= maxDigits; more++) {
            BigDecimal low = digits.movePointRight(more);
            if (span(negative, low, digits.add(BigDecimal.ONE).movePointRight(more))) {
                return true;
            }
        }
        return false;
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
}
