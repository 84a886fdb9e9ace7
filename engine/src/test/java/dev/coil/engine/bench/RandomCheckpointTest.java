package dev.coil.engine.bench;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.Phase;
import dev.coil.engine.runner.LoadedModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The benchmark's random checkpoint is a loadable GraniteMoeHybrid folder, the same for the same seed. */
class RandomCheckpointTest {

    private static final RandomCheckpoint.Shape TINY = new RandomCheckpoint.Shape(64, 32, 7, 7, 4, 2, 4, 16, 8, 48);

    @Test
    void writesALoadableModelOfTheGivenShape(@TempDir Path temp) throws IOException {
        Path folder = RandomCheckpoint.write(temp.resolve("model"), TINY, DType.BF16, 3);
        try (LoadedModel model = LoadedModel.load(folder)) {
            assertThat(model.config().architecture()).isEqualTo("GraniteMoeHybridForCausalLM");
            assertThat(model.config().countBlocks(BlockSpec.Attention.class)).isEqualTo(1);
            assertThat(model.config().countBlocks(BlockSpec.Mamba.class)).isEqualTo(6);
            assertThat(model.checkpoint().info("model.embed_tokens.weight").dtype()).isEqualTo(DType.BF16);
            float[] logits = model.model().forward(new CpuOps(new Parallel(1)), model.model().newSequence(),
                    new int[] {1, 2, 3, 4, 5}, Phase.PREFILL, false);
            assertThat(logits).hasSize(64);
            for (float value : logits) {
                assertThat(value).isFinite();
            }
            assertThat(CpuBenchmark.weightBytesPerToken(model))
                    .isEqualTo(Files.size(folder.resolve("model.safetensors")) - headerAndEmbeddingBytes(model));
        }
    }

    @Test
    void writesRoutedExpertsAndCountsOnlyATokensShareOfThemAsRead(@TempDir Path temp) throws IOException {
        RandomCheckpoint.Shape shape = new RandomCheckpoint.Shape(64, 32, 3, 3, 4, 2, 4, 16, 8, 48, 8, 2, 24);
        Path folder = RandomCheckpoint.write(temp.resolve("experts"), shape, DType.BF16, 5);
        try (LoadedModel model = LoadedModel.load(folder)) {
            assertThat(model.config().hasRoutedExperts()).isTrue();
            float[] logits = model.model().forward(new CpuOps(new Parallel(1)), model.model().newSequence(),
                    new int[] {1, 2, 3}, Phase.PREFILL, false);
            for (float value : logits) {
                assertThat(value).isFinite();
            }
            // Each layer's experts: 8 × (2·24·32 + 32·24) bf16 values, of which a token reads 2 experts' worth.
            long experts = 3L * 8 * (2 * 24 * 32 + 32 * 24) * 2;
            assertThat(CpuBenchmark.weightBytesPerToken(model)).isEqualTo(Files.size(folder.resolve("model.safetensors"))
                    - headerAndEmbeddingBytes(model) - experts + experts / 8 * 2);
        }
    }

    @Test
    void sameSeedWritesTheSameBytes(@TempDir Path temp) throws IOException {
        Path first = RandomCheckpoint.write(temp.resolve("a"), TINY, DType.BF16, 9);
        Path second = RandomCheckpoint.write(temp.resolve("b"), TINY, DType.BF16, 9);
        assertThat(Files.readAllBytes(first.resolve("model.safetensors")))
                .isEqualTo(Files.readAllBytes(second.resolve("model.safetensors")));
    }

    /** The file's header plus the embedding table, which a decode step reads one row of. */
    private static long headerAndEmbeddingBytes(LoadedModel model) {
        long embedding = model.checkpoint().info("model.embed_tokens.weight").byteSize();
        long tensors = model.checkpoint().names().stream().mapToLong(name -> model.checkpoint().info(name).byteSize()).sum();
        try {
            long file = Files.size(model.directory().resolve("model.safetensors"));
            return file - tensors + embedding;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
