package dev.coil.engine.load;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {

    @TempDir
    Path folder;

    private static TensorSource ramp(DType dtype, int rows, int cols, float start) {
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = start + i;
        }
        return TensorSource.of(dtype, values, rows, cols);
    }

    private void writeSharded() throws IOException {
        SafeTensorsWriter.write(folder.resolve("model-00001-of-00002.safetensors"), Map.of(
                "embed.weight", ramp(DType.BF16, 4, 3, 0),
                "layers.0.norm.weight", ramp(DType.F32, 1, 3, 100)));
        SafeTensorsWriter.write(folder.resolve("model-00002-of-00002.safetensors"), Map.of(
                "layers.1.proj.weight", ramp(DType.F16, 2, 3, 10),
                "unlisted", ramp(DType.F32, 1, 1, 0)));
        Files.writeString(folder.resolve(Checkpoint.INDEX_FILE), """
                {"metadata": {"total_size": 60},
                 "weight_map": {
                   "embed.weight": "model-00001-of-00002.safetensors",
                   "layers.0.norm.weight": "model-00001-of-00002.safetensors",
                   "layers.1.proj.weight": "model-00002-of-00002.safetensors"}}
                """);
    }

    @Test
    void shardedFolderReadsEveryTensorFromItsShard() throws IOException {
        writeSharded();
        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            assertThat(checkpoint.names())
                    .containsExactly("embed.weight", "layers.0.norm.weight", "layers.1.proj.weight");
            assertThat(checkpoint.has("unlisted")).isFalse();
            assertThat(checkpoint.matrix("embed.weight", 4, 3).get(3, 2)).isEqualTo(11f);
            assertThat(checkpoint.floats("layers.0.norm.weight", 1, 3)).containsExactly(100, 101, 102);
            assertThat(checkpoint.matrix("layers.1.proj.weight", 2, 3).get(1, 0)).isEqualTo(13f);
            assertThat(checkpoint.info("layers.1.proj.weight").file()).isEqualTo("model-00002-of-00002.safetensors");
        }
    }

    /** Every shard copied at open: the same tensors as mapped, still readable once the files are gone. */
    @Test
    void shardsInMemoryHoldTheFilesBytes() throws IOException {
        writeSharded();
        try (Checkpoint checkpoint = Checkpoint.open(folder, WeightStorage.MEMORY)) {
            try (Checkpoint mapped = Checkpoint.open(folder)) {
                for (String name : mapped.names()) {
                    assertThat(checkpoint.data(name).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)).as(name)
                            .containsExactly(mapped.data(name).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
                }
            }
            try (var files = Files.list(folder)) {
                for (Path file : files.toList()) {
                    Files.delete(file);
                }
            }
            assertThat(checkpoint.matrix("embed.weight", 4, 3).get(3, 2)).isEqualTo(11f);
            assertThat(checkpoint.floats("layers.0.norm.weight", 1, 3)).containsExactly(100, 101, 102);
            assertThat(checkpoint.matrix("layers.1.proj.weight", 2, 3).get(1, 0)).isEqualTo(13f);
        }
    }

    /** Weights that would fill more than 80% of the memory left stay mapped; those that fit are copied. */
    @Test
    void weightsTooLargeForTheMemoryLeftStayMapped() throws IOException {
        writeSharded();
        long bytes = Files.size(folder.resolve("model-00001-of-00002.safetensors"))
                + Files.size(folder.resolve("model-00002-of-00002.safetensors"));
        try (Checkpoint tight = Checkpoint.open(folder, WeightStorage.MEMORY, OptionalLong.of(bytes));
                Checkpoint roomy = Checkpoint.open(folder, WeightStorage.MEMORY, OptionalLong.of(2 * bytes));
                Checkpoint unknown = Checkpoint.open(folder, WeightStorage.MEMORY, OptionalLong.empty());
                Checkpoint mapped = Checkpoint.open(folder, WeightStorage.MAPPED, OptionalLong.of(1))) {
            assertThat(tight.storage()).isEqualTo(WeightStorage.MAPPED);
            assertThat(roomy.storage()).isEqualTo(WeightStorage.MEMORY);
            assertThat(unknown.storage()).isEqualTo(WeightStorage.MEMORY);
            assertThat(mapped.storage()).isEqualTo(WeightStorage.MAPPED);
            for (Checkpoint checkpoint : List.of(tight, roomy, unknown, mapped)) {
                assertThat(checkpoint.matrix("layers.1.proj.weight", 2, 3).get(1, 0)).isEqualTo(13f);
            }
        }
    }

    @Test
    void missingShard() throws IOException {
        writeSharded();
        Files.delete(folder.resolve("model-00002-of-00002.safetensors"));
        assertThatThrownBy(() -> Checkpoint.open(folder))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining(Checkpoint.INDEX_FILE)
                .hasMessageContaining("model-00002-of-00002.safetensors")
                .hasMessageContaining("does not exist");
    }

    @Test
    void indexedTensorAbsentFromItsShard() throws IOException {
        writeSharded();
        Files.writeString(folder.resolve(Checkpoint.INDEX_FILE), """
                {"weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"}}
                """);
        assertThatThrownBy(() -> Checkpoint.open(folder))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining("'lm_head.weight'")
                .hasMessageContaining("model-00001-of-00002.safetensors");
    }

    @Test
    void shardOutsideTheFolder() throws IOException {
        writeSharded();
        Files.writeString(folder.resolve(Checkpoint.INDEX_FILE), """
                {"weight_map": {"embed.weight": "../model-00001-of-00002.safetensors"}}
                """);
        assertThatThrownBy(() -> Checkpoint.open(folder))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining("'embed.weight'")
                .hasMessageContaining("inside the model folder");
    }

    @Test
    void indexWithoutWeightMap() throws IOException {
        Files.writeString(folder.resolve(Checkpoint.INDEX_FILE), "{\"metadata\": {}}");
        assertThatThrownBy(() -> Checkpoint.open(folder))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining(Checkpoint.INDEX_FILE)
                .hasMessageContaining("'weight_map'");
    }

    @Test
    void missingTensorIsNamedWithItsFile() throws IOException {
        SafeTensorsWriter.write(folder.resolve(Checkpoint.SINGLE_FILE), Map.of("a", ramp(DType.F32, 1, 2, 0)));
        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            assertThatThrownBy(() -> checkpoint.matrix("model.layers.3.mixer.in_proj.weight", 2, 2))
                    .isInstanceOf(CheckpointException.class)
                    .hasMessage("model.safetensors has no tensor 'model.layers.3.mixer.in_proj.weight'.");
        }
    }

    @Test
    void wrongShapeNamesTheTensorAndBothShapes() throws IOException {
        SafeTensorsWriter.write(folder.resolve(Checkpoint.SINGLE_FILE), Map.of("w", ramp(DType.F32, 3, 4, 0)));
        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            assertThatThrownBy(() -> checkpoint.matrix("w", 4, 3))
                    .isInstanceOf(CheckpointException.class)
                    .hasMessage("model.safetensors: tensor 'w' has shape [3, 4]; expected [4, 3].");
            assertThatThrownBy(() -> checkpoint.floats("w", 12))
                    .isInstanceOf(CheckpointException.class)
                    .hasMessageContaining("'w'").hasMessageContaining("[3, 4]").hasMessageContaining("[12]");
        }
    }

    @Test
    void folderWithoutWeights() throws IOException {
        Files.writeString(folder.resolve("config.json"), "{}");
        assertThatThrownBy(() -> Checkpoint.open(folder))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining(folder.toString())
                .hasMessageContaining(Checkpoint.SINGLE_FILE)
                .hasMessageContaining(Checkpoint.INDEX_FILE)
                .hasMessageNotContaining("pickle");
    }

    @Test
    void pickleOnlyFolderSaysToConvert() throws IOException {
        Files.write(folder.resolve("pytorch_model.bin"), new byte[16]);
        assertThatThrownBy(() -> Checkpoint.open(folder))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining("pytorch_model.bin")
                .hasMessageContaining("pickle checkpoints are not supported; convert to safetensors");
    }

    @Test
    void folderThatDoesNotExist() {
        Path absent = folder.resolve("nowhere");
        assertThatThrownBy(() -> Checkpoint.open(absent))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining(absent.toString())
                .hasMessageContaining("does not exist");
    }
}
