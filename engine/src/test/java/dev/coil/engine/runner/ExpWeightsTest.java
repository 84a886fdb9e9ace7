package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The weights against fdlibm's exponential of the same float argument, and their sum. */
class ExpWeightsTest {

    @ParameterizedTest(name = "length={0} scale={1}")
    @CsvSource({"1, 1.0", "7, 1.0", "17, 0.5", "1003, 2.0", "150001, 1.4285715"})
    void matchesFdlibmsExponentialOfTheFloatArgument(int length, float scale) {
        SplittableRandom random = new SplittableRandom(length);
        float[] scores = new float[length];
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < length; i++) {
            scores[i] = random.nextInt(10) == 0 ? Float.NEGATIVE_INFINITY : (float) (random.nextGaussian() * 4);
            max = Math.max(max, scores[i]);
        }
        if (max == Float.NEGATIVE_INFINITY) {
            scores[0] = 0;
            max = 0;
        }
        float[] fast = new float[length];
        float[] reference = new float[length];
        double fastTotal = ExpWeights.compute(scores, length, max, scale, fast);
        double referenceTotal = 0;
        for (int i = 0; i < length; i++) {
            reference[i] = (float) StrictMath.exp((scores[i] - max) * scale);
            referenceTotal += reference[i];
        }

        double worst = 0;
        for (int i = 0; i < length; i++) {
            double error = Math.abs(fast[i] - reference[i]) / Math.max(Math.ulp(reference[i]), Float.MIN_NORMAL);
            worst = Math.max(worst, error);
            if (scores[i] == Float.NEGATIVE_INFINITY) {
                assertThat(fast[i]).isZero();
            }
        }
        // Both round the argument identically; Math.exp is within an ulp of fdlibm's.
        assertThat(worst).as("worst error in ulp of the reference").isLessThanOrEqualTo(1);
        assertThat(fastTotal).isCloseTo(referenceTotal, within(referenceTotal * 1e-5));
    }
}
