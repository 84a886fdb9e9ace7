package dev.coil.engine.runner;

/**
 * exp((score - max) · scale) over a whole vocabulary: the unnormalised softmax that sampling and
 * log-probabilities need at every step. Each weight is (float) Math.exp of the float argument, as the
 * GPU's sampling kernels take it ((float) exp in double), so that both keep the same survivors and
 * draws; Math.exp gives the same bits interpreted or compiled, where the Vector API's exponential
 * did not, and the weights are summed in order.
 */
final class ExpWeights {

    private ExpWeights() {
    }

    /**
     * out[i] = exp((scores[i] - max) · scale) for i in [0, length); -infinity scores give 0.
     *
     * @param max at least every score, so every weight is at most 1
     * @return the sum of the weights, accumulated in double
     */
    static double compute(float[] scores, int length, float max, float scale, float[] out) {
        double total = 0;
        for (int i = 0; i < length; i++) {
            float argument = (scores[i] - max) * scale;
            out[i] = (float) Math.exp(argument);
            total += out[i];
        }
        return total;
    }
}
