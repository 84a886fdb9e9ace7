package dev.coil.engine.bench;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.Phase;
import dev.coil.engine.runner.LoadedModel;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The random NemotronH checkpoint loads as the pattern says, and a token reads its share of the experts. */
class RandomNemotronCheckpointTest {

    @Test
    void writesALoadableNemotronWithRoutedExperts(@TempDir Path temp) throws IOException {
        // 8 experts of 24 (2 a token) beside a shared expert of 40, blocks M E * E
        RandomNemotronCheckpoint.Shape shape = new RandomNemotronCheckpoint.Shape(64, 32, "ME*E", 4, 2, 8, 4, 8, 2, 8,
                8, 2, 24, 40);
        Path folder = RandomNemotronCheckpoint.write(temp.resolve("nemotron"), shape, DType.BF16, 7);
        try (LoadedModel model = LoadedModel.load(folder)) {
            assertThat(model.config().architecture()).isEqualTo("NemotronHForCausalLM");
            assertThat(model.config().countBlocks(BlockSpec.Mamba.class)).isEqualTo(1);
            assertThat(model.config().countBlocks(BlockSpec.Attention.class)).isEqualTo(1);
            assertThat(model.config().blocks().get(1)).isInstanceOfSatisfying(BlockSpec.Mlp.class, mlp -> {
                assertThat(mlp.intermediateSize()).isEqualTo(40);
                assertThat(mlp.experts().kind()).isEqualTo(BlockSpec.ExpertKind.SQUARED_RELU);
                assertThat(mlp.experts().router()).isEqualTo(BlockSpec.Router.sigmoid(1, 1, true, 2.5f));
            });
            // two expert blocks of 8 × (24·32 + 32·24) bf16 values, of which a token reads 2 experts' worth
            assertRunsAndReadsItsShareOf(model, 2L * 8 * (24 * 32 + 32 * 24) * 2);
        }
    }

    @Test
    void writesALoadableNemotronWithLatentExperts(@TempDir Path temp) throws IOException {
        // the same blocks with the experts behind a latent projection of 16
        RandomNemotronCheckpoint.Shape shape = new RandomNemotronCheckpoint.Shape(64, 32, "ME*E", 4, 2, 8, 4, 8, 2, 8,
                8, 2, 24, 40, 16);
        Path folder = RandomNemotronCheckpoint.write(temp.resolve("latent"), shape, DType.BF16, 7);
        try (LoadedModel model = LoadedModel.load(folder)) {
            assertThat(model.config().blocks().get(3)).isInstanceOfSatisfying(BlockSpec.Mlp.class,
                    mlp -> assertThat(mlp.experts().latent()).isEqualTo(16));
            // the experts read and write 16 values; the latent projections (read whole) stay in
            assertRunsAndReadsItsShareOf(model, 2L * 8 * (24 * 16 + 16 * 24) * 2);
        }
    }

    /**
     * A prefill gives finite logits, and a token reads every tensor but the embedding (lm_head is
     * untied) and all but its 2 of 8 experts' worth of {@code expertBytes}.
     */
    private static void assertRunsAndReadsItsShareOf(LoadedModel model, long expertBytes) {
        float[] logits = model.model().forward(new CpuOps(new Parallel(1)), model.model().newSequence(),
                new int[] {1, 2, 3, 4}, Phase.PREFILL, false);
        for (float value : logits) {
            assertThat(value).isFinite();
        }
        long all = model.checkpoint().names().stream().mapToLong(name -> model.checkpoint().info(name).byteSize())
                .sum();
        long embedding = model.checkpoint().info("backbone.embeddings.weight").byteSize();
        assertThat(CpuBenchmark.weightBytesPerToken(model))
                .isEqualTo(all - embedding - expertBytes + expertBytes / 8 * 2);
    }
}
