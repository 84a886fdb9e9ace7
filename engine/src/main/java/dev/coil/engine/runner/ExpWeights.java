package dev.coil.engine.runner;

import dev.coil.engine.cpu.Lanes;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * exp((score - max) · scale) over a whole vocabulary: the unnormalised softmax that sampling and
 * log-probabilities need at every step. With 100k+ tokens the exponentials dominate the cost of sampling,
 * so this runs on the Vector API; {@link #computeReference} is the plain twin the tests compare with.
 */
final class ExpWeights {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private ExpWeights() {
    }

    /**
     * out[i] = exp((scores[i] - max) · scale) for i in [0, length); -infinity scores give 0.
     *
     * @param max at least every score, so every weight is at most 1
     * @return the sum of the weights, accumulated in double
     */
    static double compute(float[] scores, int length, float max, float scale, float[] out) {
        FloatVector shift = FloatVector.broadcast(SPECIES, max);
        FloatVector factor = FloatVector.broadcast(SPECIES, scale);
        double total = 0;
        int i = 0;
        for (int bound = SPECIES.loopBound(length); i < bound; i += SPECIES.length()) {
            FloatVector weight = Lanes.exp(FloatVector.fromArray(SPECIES, scores, i).sub(shift).mul(factor));
            weight.intoArray(out, i);
            total += Lanes.sum(weight);
        }
        for (; i < length; i++) {
            float argument = (scores[i] - max) * scale;
            out[i] = (float) Math.exp(argument);
            total += out[i];
        }
        return total;
    }

    /** The same with scalar Math.exp: the argument is rounded to float as above, the exponential is exact. */
    static double computeReference(float[] scores, int length, float max, float scale, float[] out) {
        double total = 0;
        for (int i = 0; i < length; i++) {
            float argument = (scores[i] - max) * scale;
            out[i] = (float) Math.exp(argument);
            total += out[i];
        }
        return total;
    }
}
