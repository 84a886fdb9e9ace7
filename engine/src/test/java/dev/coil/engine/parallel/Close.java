package dev.coil.engine.parallel;

import static org.assertj.core.api.Assertions.assertThat;

/** Elementwise comparison of f32 results with a reference, relative to the larger of the element and the array's RMS. */
final class Close {

    private Close() {
    }

    static void assertClose(float[] actual, float[] expected, double tolerance, String what) {
        assertThat(actual).as(what).hasSameSizeAs(expected);
        double squares = 0;
        for (float e : expected) {
            squares += (double) e * e;
        }
        double rms = Math.sqrt(squares / Math.max(1, expected.length));
        assertThat(rms).as("%s is not trivially zero", what).isGreaterThan(0);
        for (int i = 0; i < expected.length; i++) {
            double error = Math.abs((double) actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), rms);
            assertThat(error).as("%s[%d]: %s vs %s", what, i, actual[i], expected[i]).isLessThanOrEqualTo(tolerance);
        }
    }
}
