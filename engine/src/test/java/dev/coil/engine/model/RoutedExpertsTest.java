package dev.coil.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
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
                        double gate = dot(experts.input(e), c, x, t * HIDDEN, HIDDEN);
                        double up = dot(experts.input(e), WIDTH + c, x, t * HIDDEN, HIDDEN);
                        sum += experts.down(e).get(j, c) * gate / (1 + Math.exp(-gate)) * up;
                    }
                    expected += Math.exp(scores[e] - scores[order[0]]) / total * sum;
                }
                assertThat((double) actual[t * HIDDEN + j]).as("token %d, column %d", t, j)
                        .isCloseTo(expected, within(1e-5));
            }
        }
    }

    @Test
    void sigmoidRouterKeepsTheBestGroupsAndWeighsByTheSigmoidNormalisedAndScaled() {
        // 8 experts in 4 groups of 2; the 2 groups whose two choice values sum highest are kept; 3 a token
        BlockSpec.Experts spec = new BlockSpec.Experts("e.", 8, 3, WIDTH, BlockSpec.ExpertKind.SQUARED_RELU,
                BlockSpec.Router.sigmoid(4, 2, true, 2.5f));
        float[] bias = {0f, 0f, 0f, 0f, 0f, 0f, 0.5f, 0f};
        RoutedExperts experts = squaredRelu(spec, bias, new Random(3));
        float[] scores = {
            // groups: {3, 2}; {0, 0}; {1, -1.5}; {-2, -2} with the bias 0.5 on expert 6
            3f, 2f, 0f, 0f, 1f, -1.5f, -2f, -2f,
            // every score equal: group 3 (with the bias) is best, groups 0-2 tie and the lowest is kept
            1f, 1f, 1f, 1f, 1f, 1f, 1f, 1f,
        };
        RoutedExperts.Routing routing = experts.route(scores, 2);
        // token 0: group sums 1.83 (0-1), 1.0 (2-3), 0.91 (4-5), 0.74 (6-7 with the bias): groups 0 and 1 kept;
        // the best three choice values are experts 0, 1 and then 2 and 3 tie at s(0) = 0.5: the lower, 2.
        // token 1: groups 3 and 0; expert 6 (s + 0.5) first, then 0, 1 and 7 tie: 0 and 1
        assertThat(routing.experts()).containsExactly(0, 1, 2, 6, 0, 1);
        double s0 = 1 / (1 + Math.exp(-3.0));
        double s1 = 1 / (1 + Math.exp(-2.0));
        double s2 = 0.5;
        double total = s0 + s1 + s2;
        assertThat((double) routing.weights()[0]).isCloseTo(2.5 * s0 / total, within(1e-6));
        assertThat((double) routing.weights()[1]).isCloseTo(2.5 * s1 / total, within(1e-6));
        assertThat((double) routing.weights()[2]).isCloseTo(2.5 * s2 / total, within(1e-6));
        assertThat((double) routing.weights()[3]).isCloseTo(2.5 / 3, within(1e-6));

        // The bias moves the choice but not the weight: expert 6 (score -2, bias 0.5) beats expert 7 in its group.
        BlockSpec.Experts unnormalised = new BlockSpec.Experts("e.", 8, 2, WIDTH, BlockSpec.ExpertKind.SQUARED_RELU,
                BlockSpec.Router.sigmoid(1, 1, false, 1f));
        RoutedExperts single = squaredRelu(unnormalised, bias, new Random(4));
        RoutedExperts.Routing biased = single.route(new float[] {-3f, -3f, -3f, -3f, -3f, -3f, -2f, -1.9f}, 1);
        assertThat(biased.experts()).containsExactly(6, 7);
        assertThat((double) biased.weights()[0]).isCloseTo(1 / (1 + Math.exp(2.0)), within(1e-7));
    }

    @Test
    void squaredReluExpertsOutputIsTheWeightedSumWrittenOut() {
        Random random = new Random(5);
        BlockSpec.Experts spec = new BlockSpec.Experts("e.", 6, 2, WIDTH, BlockSpec.ExpertKind.SQUARED_RELU,
                BlockSpec.Router.sigmoid(2, 1, true, 1.5f));
        float[] bias = gaussian(random, spec.count());
        RoutedExperts experts = squaredRelu(spec, bias, random);
        int tokens = 7;
        float[] x = gaussian(random, tokens * HIDDEN);
        float[] actual = experts.apply(new ReferenceOps(), x, tokens);
        float[] scores = experts.router().apply(new ReferenceOps(), x, tokens);
        RoutedExperts.Routing routing = experts.route(scores, tokens);
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < HIDDEN; j++) {
                double expected = 0;
                for (int s = 0; s < spec.perToken(); s++) {
                    int e = routing.experts()[t * spec.perToken() + s];
                    double sum = 0;
                    for (int c = 0; c < WIDTH; c++) {
                        double up = Math.max(0, dot(experts.input(e), c, x, t * HIDDEN, HIDDEN));
                        sum += experts.down(e).get(j, c) * up * up;
                    }
                    expected += routing.weights()[t * spec.perToken() + s] * sum;
                }
                assertThat((double) actual[t * HIDDEN + j]).as("token %d, column %d", t, j)
                        .isCloseTo(expected, within(1e-5 * Math.max(1, Math.abs(expected))));
            }
        }
    }

    @Test
    void latentExpertsAreTheSecondProjectionOfTheWeightedSumOverTheFirstRoutedByTheHiddenRow() {
        Random random = new Random(6);
        int latent = 4;
        BlockSpec.Experts spec = new BlockSpec.Experts("e.", 6, 2, WIDTH, BlockSpec.ExpertKind.SQUARED_RELU,
                BlockSpec.Router.sigmoid(2, 1, true, 2.5f), latent);
        float[] bias = gaussian(random, spec.count());
        Linear router = new Linear(Matrix.ofFloats(gaussian(random, spec.count() * HIDDEN), spec.count(), HIDDEN), null);
        Matrix up = Matrix.ofFloats(gaussian(random, spec.count() * WIDTH * latent), spec.count() * WIDTH, latent);
        Matrix down = Matrix.ofFloats(gaussian(random, spec.count() * latent * WIDTH), spec.count() * latent, WIDTH);
        // fc1 [latent, hidden] and fc2 [hidden, latent], with biases (as mlp_bias gives them)
        Linear fc1 = new Linear(Matrix.ofFloats(gaussian(random, latent * HIDDEN), latent, HIDDEN), gaussian(random, latent));
        Linear fc2 = new Linear(Matrix.ofFloats(gaussian(random, HIDDEN * latent), HIDDEN, latent), gaussian(random, HIDDEN));
        RoutedExperts experts = new RoutedExperts(spec, router, bias, RoutedExperts.slices(up, spec.count()),
                RoutedExperts.slices(down, spec.count()), fc1, fc2);
        int tokens = 7;
        float[] x = gaussian(random, tokens * HIDDEN);
        float[] actual = experts.apply(new ReferenceOps(), x, tokens);
        RoutedExperts.Routing routing = experts.route(router.apply(new ReferenceOps(), x, tokens), tokens);
        for (int t = 0; t < tokens; t++) {
            double[] inLatent = new double[latent];
            for (int l = 0; l < latent; l++) {
                inLatent[l] = dot(fc1.weight(), l, x, t * HIDDEN, HIDDEN) + fc1.bias()[l];
            }
            double[] sum = new double[latent];
            for (int s = 0; s < spec.perToken(); s++) {
                int e = routing.experts()[t * spec.perToken() + s];
                for (int l = 0; l < latent; l++) {
                    double expertOut = 0;
                    for (int c = 0; c < WIDTH; c++) {
                        double u = 0;
                        for (int i = 0; i < latent; i++) {
                            u += experts.input(e).get(c, i) * inLatent[i];
                        }
                        u = Math.max(0, u);
                        expertOut += experts.down(e).get(l, c) * u * u;
                    }
                    sum[l] += routing.weights()[t * spec.perToken() + s] * expertOut;
                }
            }
            for (int j = 0; j < HIDDEN; j++) {
                double expected = fc2.bias()[j];
                for (int l = 0; l < latent; l++) {
                    expected += fc2.weight().get(j, l) * sum[l];
                }
                assertThat((double) actual[t * HIDDEN + j]).as("token %d, column %d", t, j)
                        .isCloseTo(expected, within(1e-4 * Math.max(1, Math.abs(expected))));
            }
        }
    }

    @Test
    void latentProjectionsThatDoNotFitTheSpecAreRefused() {
        Random random = new Random(7);
        BlockSpec.Experts plain = new BlockSpec.Experts("e.", 4, 2, WIDTH, BlockSpec.ExpertKind.SQUARED_RELU,
                BlockSpec.Router.sigmoid(1, 1, true, 1f), 0);
        Linear router = new Linear(Matrix.ofFloats(gaussian(random, 4 * HIDDEN), 4, HIDDEN), null);
        Matrix[] up = RoutedExperts.slices(Matrix.ofFloats(gaussian(random, 4 * WIDTH * HIDDEN), 4 * WIDTH, HIDDEN), 4);
        Matrix[] down = RoutedExperts.slices(Matrix.ofFloats(gaussian(random, 4 * HIDDEN * WIDTH), 4 * HIDDEN, WIDTH), 4);
        Linear square = new Linear(Matrix.ofFloats(gaussian(random, HIDDEN * HIDDEN), HIDDEN, HIDDEN), null);
        // projections given to experts whose spec names none
        assertThatThrownBy(() -> new RoutedExperts(plain, router, new float[4], up, down, square, square))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("latent projections");
        // a spec with a latent size and no projections
        BlockSpec.Experts latent = new BlockSpec.Experts("e.", 4, 2, WIDTH, BlockSpec.ExpertKind.SQUARED_RELU,
                BlockSpec.Router.sigmoid(1, 1, true, 1f), HIDDEN);
        assertThatThrownBy(() -> new RoutedExperts(latent, router, new float[4], up, down))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("latent projections");
    }

    private static RoutedExperts squaredRelu(BlockSpec.Experts spec, float[] bias, Random random) {
        Linear router = new Linear(Matrix.ofFloats(gaussian(random, spec.count() * HIDDEN), spec.count(), HIDDEN), null);
        Matrix up = Matrix.ofFloats(gaussian(random, spec.count() * WIDTH * HIDDEN), spec.count() * WIDTH, HIDDEN);
        Matrix down = Matrix.ofFloats(gaussian(random, spec.count() * HIDDEN * WIDTH), spec.count() * HIDDEN, WIDTH);
        return new RoutedExperts(spec, router, bias, RoutedExperts.slices(up, spec.count()),
                RoutedExperts.slices(down, spec.count()));
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
