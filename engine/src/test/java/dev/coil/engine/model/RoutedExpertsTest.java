package dev.coil.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The routing and the weighted sum of {@link RoutedExperts}, against their definitions written out. */
class RoutedExpertsTest {

    private static final int HIDDEN = 6;
    private static final int WIDTH = 5;

    @Test
    void eachTokenTakesItsBestExpertsWithTheSoftmaxOfTheirScoresAndTiesGoToTheLowerExpert() {
        RoutedExperts experts = experts(new BlockSpec.Experts("e.", 5, 2, WIDTH), new Random(1));
        float[] scores = {
            0.5f, 2.0f, -1.0f, 1.0f, 0.0f, // experts 1 and 3
            1.5f, 0.0f, 1.5f, 1.5f, -2.0f, // a three-way tie: experts 0 and 2
        };
        RoutedExperts.Routing routing = experts.route(scores, 2);
        assertThat(routing.experts()).containsExactly(1, 3, 0, 2);
        double first = Math.exp(2.0 - 2.0);
        double second = Math.exp(1.0 - 2.0);
        assertThat(routing.weights()[0]).isCloseTo((float) (first / (first + second)), within(1e-7f));
        assertThat(routing.weights()[1]).isCloseTo((float) (second / (first + second)), within(1e-7f));
        assertThat(routing.weights()[2]).isEqualTo(0.5f);
        assertThat(routing.tokensOf(0)).containsExactly(1);
        assertThat(routing.tokensOf(4)).isEmpty();
    }

    @Test
    void outputIsTheWeightedSumOfEachTokensExpertsWrittenOut() {
        Random random = new Random(2);
        BlockSpec.Experts spec = new BlockSpec.Experts("e.", 7, 3, WIDTH);
        RoutedExperts experts = experts(spec, random);
        int tokens = 9;
        float[] x = gaussian(random, tokens * HIDDEN);
        float[] actual = experts.apply(new ReferenceOps(), x, tokens);
        for (int t = 0; t < tokens; t++) {
            double[] scores = new double[spec.count()];
            for (int e = 0; e < spec.count(); e++) {
                scores[e] = dot(experts.router().weight(), e, x, t * HIDDEN, HIDDEN);
            }
            Integer[] order = {0, 1, 2, 3, 4, 5, 6};
            java.util.Arrays.sort(order, (a, b) -> Double.compare(scores[b], scores[a]));
            double total = 0;
            for (int s = 0; s < spec.perToken(); s++) {
                total += Math.exp(scores[order[s]] - scores[order[0]]);
            }
            for (int j = 0; j < HIDDEN; j++) {
                double expected = 0;
                for (int s = 0; s < spec.perToken(); s++) {
                    int e = order[s];
                    double sum = 0;
                    for (int c = 0; c < WIDTH; c++) {
                        double gate = dot(experts.gateAndUp(), e * 2 * WIDTH + c, x, t * HIDDEN, HIDDEN);
                        double up = dot(experts.gateAndUp(), e * 2 * WIDTH + WIDTH + c, x, t * HIDDEN, HIDDEN);
                        sum += experts.down().get(e * HIDDEN + j, c) * gate / (1 + Math.exp(-gate)) * up;
                    }
                    expected += Math.exp(scores[e] - scores[order[0]]) / total * sum;
                }
                assertThat((double) actual[t * HIDDEN + j]).as("token %d, column %d", t, j)
                        .isCloseTo(expected, within(1e-5));
            }
        }
    }

    private static RoutedExperts experts(BlockSpec.Experts spec, Random random) {
        Linear router = new Linear(Matrix.ofFloats(gaussian(random, spec.count() * HIDDEN), spec.count(), HIDDEN), null);
        Matrix gateAndUp = Matrix.ofFloats(gaussian(random, spec.count() * 2 * WIDTH * HIDDEN), spec.count() * 2 * WIDTH,
                HIDDEN);
        Matrix down = Matrix.ofFloats(gaussian(random, spec.count() * HIDDEN * WIDTH), spec.count() * HIDDEN, WIDTH);
        return new RoutedExperts(spec, router, gateAndUp, down);
    }

    private static double dot(Matrix w, int row, float[] x, int offset, int length) {
        double sum = 0;
        for (int c = 0; c < length; c++) {
            sum += (double) w.get(row, c) * x[offset + c];
        }
        return sum;
    }

    private static float[] gaussian(Random random, int count) {
        float[] values = new float[count];
        for (int i = 0; i < count; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }
}
