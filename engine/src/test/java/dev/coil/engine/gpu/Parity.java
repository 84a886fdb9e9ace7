package dev.coil.engine.gpu;

import java.util.Random;

/** Comparisons of device results with the double-precision references, with the error printed. */
public final class Parity {

    private Parity() {}

    /**
     * Every element finite (a NaN left is an unwritten output) and |actual − expected| ≤ tolerance ·
     * (|expected| + rms(expected)): relative for large elements, against the row's scale near zero.
     */
    public static void assertClose(String what, float[] actual, float[] expected, double tolerance) {
        if (actual.length != expected.length) {
            throw new AssertionError(what + ": " + actual.length + " values, expected " + expected.length);
        }
        double squares = 0;
        for (float e : expected) {
            squares += (double) e * e;
        }
        double rms = Math.sqrt(squares / Math.max(1, expected.length));
        double maxError = 0;
        double errorSquares = 0;
        int worst = -1;
        double worstRatio = 0;
        for (int i = 0; i < expected.length; i++) {
            if (!Float.isFinite(actual[i])) {
                throw new AssertionError(what + ": element " + i + " is " + actual[i] + " (expected " + expected[i]
                        + "): never written, or the kernel overflowed");
            }
            double error = Math.abs((double) actual[i] - expected[i]);
            errorSquares += error * error;
            maxError = Math.max(maxError, error);
            double ratio = error / (Math.abs(expected[i]) + rms);
            if (ratio > worstRatio) {
                worstRatio = ratio;
                worst = i;
            }
        }
        double relative = Math.sqrt(errorSquares / Math.max(squares, Double.MIN_NORMAL));
        System.out.printf("[parity] %s: max |error| %.3g, relative (norm) %.3g%n", what, maxError, relative);
        if (worstRatio > tolerance) {
            throw new AssertionError(String.format("%s: element %d is %s, expected %s (error %.3g, %.3g of the scale, "
                    + "allowed %.3g; relative norm error %.3g)", what, worst, actual[worst], expected[worst],
                    Math.abs((double) actual[worst] - expected[worst]), worstRatio, tolerance, relative));
        }
    }

    /**
     * Bit-for-bit equality, for ops that only move or round values the way Java does. A NaN fails even where
     * the expected side holds the same one: outputs are filled with NaN before a kernel runs, so two NaNs at
     * one place are more likely an element neither side wrote than a result.
     */
    public static void assertExact(String what, float[] actual, float[] expected) {
        if (actual.length != expected.length) {
            throw new AssertionError(what + ": " + actual.length + " values, expected " + expected.length);
        }
        int mismatches = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            if (Float.isNaN(actual[i])
                    || Float.floatToRawIntBits(actual[i]) != Float.floatToRawIntBits(expected[i])) {
                mismatches++;
                if (first < 0) {
                    first = i;
                }
            }
        }
        System.out.printf("[parity] %s: %d of %d elements differ%n", what, mismatches, expected.length);
        if (mismatches > 0) {
            throw new AssertionError(what + ": " + mismatches + " of " + expected.length + " elements differ; first at "
                    + first + ": " + actual[first] + ", expected " + expected[first]);
        }
    }

    /** n values uniform in [low, high). */
    public static float[] uniform(Random random, int n, double low, double high) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) (low + (high - low) * random.nextDouble());
        }
        return values;
    }
}
