package dev.coil.engine.load;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelFolderTest {

    @TempDir
    Path folder;

    @Test
    void missingFolder() {
        Path absent = folder.resolve("absent");
        assertThatThrownBy(() -> ModelFolder.open(absent))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining(absent.toString()).hasMessageContaining("does not exist");
    }

    @Test
    void missingConfig() {
        assertThatThrownBy(() -> ModelFolder.open(folder))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining(folder.toString()).hasMessageContaining("config.json");
    }

    @Test
    void readsConfigAndOptionalFiles() throws IOException {
        Files.writeString(folder.resolve("config.json"), "{\"hidden_size\": 64}");
        Files.writeString(folder.resolve("tokenizer_config.json"), "{\"eos_token\": \"</s>\"}");
        SafeTensorsWriter.write(folder.resolve("model.safetensors"),
                Map.of("w", TensorSource.of(DType.F32, new float[] {1}, 1)));

        ModelFolder model = ModelFolder.open(folder);
        assertThat(ConfigJson.requireInt(model.config(), "hidden_size", "config.json")).isEqualTo(64);
        assertThat(model.tokenizerConfig()).get()
                .extracting(node -> node.get("eos_token").textValue()).isEqualTo("</s>");
        assertThat(model.tokenizerFile()).isEmpty();
        assertThat(model.specialTokensMap()).isEmpty();
        assertThat(model.generationConfig()).isEqualTo(GenerationConfig.NONE);
        try (Checkpoint checkpoint = model.openCheckpoint()) {
            assertThat(checkpoint.names()).containsExactly("w");
        }
    }

    @Test
    void generationConfigWithEveryField() throws IOException {
        Files.writeString(folder.resolve("config.json"), "{}");
        Files.writeString(folder.resolve("generation_config.json"), """
                {"bos_token_id": 1, "eos_token_id": [2, 32000], "pad_token_id": null,
                 "temperature": 0.7, "top_p": 0.9, "top_k": 40, "do_sample": true,
                 "repetition_penalty": 1.1, "min_p": 0.05, "transformers_version": "4.50.0"}
                """);
        GenerationConfig generation = ModelFolder.open(folder).generationConfig();
        assertThat(generation.eosTokenIds()).containsExactly(2, 32000);
        assertThat(generation.bosTokenId()).hasValue(1);
        assertThat(generation.padTokenId()).isEmpty();
        assertThat(generation.temperature()).hasValue(0.7);
        assertThat(generation.topP()).hasValue(0.9);
        assertThat(generation.topK()).hasValue(40);
        assertThat(generation.doSample()).contains(true);
        assertThat(generation.repetitionPenalty()).hasValue(1.1);
        assertThat(generation.minP()).hasValue(0.05);
    }

    @Test
    void singleEosIdAndNoSamplingDefaults() throws IOException {
        Files.writeString(folder.resolve("config.json"), "{}");
        Files.writeString(folder.resolve("generation_config.json"), "{\"eos_token_id\": 0}");
        GenerationConfig generation = ModelFolder.open(folder).generationConfig();
        assertThat(generation.eosTokenIds()).containsExactly(0);
        assertThat(generation.temperature()).isEmpty();
        assertThat(generation.doSample()).isEmpty();
    }
}
