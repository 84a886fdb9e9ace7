package dev.coil.engine.cpu;

import static org.assertj.core.api.Assertions.assertThat;

/** Comparisons of f32 results with double-precision references. */
final class F32Assertions {

    private F32Assertions() {}

    /** Elementwise within 1e-5 of the larger of the element and the array's RMS (f32 sums of many terms). */
    static void assertClose(float[] actual, float[] expected, String what) {
        assertThat(actual).hasSameSizeAs(expected);
        double squares = 0;
        for (float e : expected) {
            squares += (double) e * e;
        }
        double rms = Math.sqrt(squares / Math.max(1, expected.length));
        assertThat(rms).as("%s is not trivially zero", what).isGreaterThan(0);
        int worst = 0;
        double worstRatio = -1;
        for (int i = 0; i < expected.length; i++) {
            // A NaN or infinity is an unwritten or broken output (the tests fill outputs with NaN first):
            // it fails at once, since no later ratio could be compared with it.
            if (!Float.isFinite(actual[i])) {
                throw new AssertionError(String.format("%s[%d] is %s, expected %s", what, i, actual[i], expected[i]));
            }
            double ratio = Math.abs((double) actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), rms);
            if (ratio > worstRatio) {
                worst = i;
                worstRatio = ratio;
            }
        }
        double tolerance = 1e-5 * Math.max(Math.abs(expected[worst]), rms);
        assertThat(Math.abs((double) actual[worst] - expected[worst]))
                .as("%s[%d]: %s vs %s", what, worst, actual[worst], expected[worst])
                .isLessThanOrEqualTo(tolerance);
    }
}
