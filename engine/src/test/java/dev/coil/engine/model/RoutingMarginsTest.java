package dev.coil.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.ops.Matrix;
import dev.coil.engine.runner.LoadedModel;
import java.io.IOException;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The routing margins the GPU ring tests excuse routing flips by: written-out cases and a known near-tie. */
class RoutingMarginsTest {

    @Test
    void aSoftmaxRowsMarginIsTheGapBetweenItsLastChosenAndFirstLeftScore() {
        BlockSpec.Experts spec = new BlockSpec.Experts("e.", 5, 2, 3);
        Linear router = new Linear(Matrix.ofFloats(new float[5 * 4], 5, 4), null);
        Matrix[] inputs = RoutedExperts.slices(Matrix.ofFloats(new float[5 * 6 * 4], 5 * 6, 4), 5);
        Matrix[] downs = RoutedExperts.slices(Matrix.ofFloats(new float[5 * 4 * 3], 5 * 4, 3), 5);
        RoutedExperts experts = new RoutedExperts(spec, router, null, inputs, downs);
        // experts 1 (2.0) and 3 (1.0) chosen; the best left out is expert 0 (0.5)
        assertThat(RoutingMargins.margin(experts, new float[] {0.5f, 2.0f, -1.0f, 1.0f, 0.0f}, 0))
                .isCloseTo(0.5, within(1e-7));
    }

    @Test
    void aModelWithoutExpertsHasNoMargins() throws IOException {
        try (LoadedModel loaded = LoadedModel.load(Fixtures.folder("nemotron_h"))) {
            assertThat(RoutingMargins.of(loaded, new int[] {1, 2, 3})).containsOnly(Double.POSITIVE_INFINITY);
        }
    }

    @Test
    void theLatentFixturesNearTieIsFoundWhereItIs() throws IOException {
        // the ring tests' prompt: position 19's third and fourth choice values in block 3 lie 7.8e-5 apart
        try (LoadedModel loaded = LoadedModel.load(Fixtures.folder("nemotron_h_latent"))) {
            int[] ids = new SplittableRandom(11).ints(300, 0, loaded.config().vocabSize()).toArray();
            double[] margins = RoutingMargins.of(loaded, ids);
            assertThat(margins[19]).isBetween(1e-5, 1e-3);
            double[] sorted = margins.clone();
            Arrays.sort(sorted);
            assertThat(sorted[sorted.length / 2]).as("the median margin").isGreaterThan(1e-2);
        }
    }
}
