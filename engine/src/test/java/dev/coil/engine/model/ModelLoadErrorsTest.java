package dev.coil.engine.model;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.load.DType;
import dev.coil.engine.load.SafeTensorsFile;
import dev.coil.engine.load.SafeTensorsWriter;
import dev.coil.engine.load.TensorInfo;
import dev.coil.engine.load.TensorSource;
import dev.coil.engine.runner.LoadedModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A bad model folder fails at load, with a sentence that names the file and the key or tensor at
 * fault and what Coil supports; never later, mid-generation.
 */
class ModelLoadErrorsTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path temp;

    /** A copy of a fixture folder whose config.json is edited by {@code edit}. */
    private Path withConfig(String fixture, Consumer<ObjectNode> edit) throws IOException {
        Path source = Fixtures.folder(fixture);
        Path copy = temp.resolve(fixture);
        Files.createDirectories(copy);
        try (var files = Files.list(source)) {
            for (Path file : files.toList()) {
                Files.copy(file, copy.resolve(file.getFileName()));
            }
        }
        ObjectNode config = (ObjectNode) JSON.readTree(copy.resolve("config.json").toFile());
        edit.accept(config);
        JSON.writeValue(copy.resolve("config.json").toFile(), config);
        return copy;
    }

    /** Rewrites model.safetensors keeping every tensor but those {@code edit} removes or replaces. */
    private static void rewriteWeights(Path folder, Consumer<Map<String, TensorSource>> edit) throws IOException {
        Path file = folder.resolve("model.safetensors");
        Map<String, TensorSource> tensors = new LinkedHashMap<>();
        try (SafeTensorsFile original = SafeTensorsFile.open(file)) {
            for (TensorInfo info : original.tensors().values()) {
                float[] values = new float[(int) info.elementCount()];
                var data = original.data(info.name());
                for (int i = 0; i < values.length; i++) {
                    values[i] = data.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i);
                }
                tensors.put(info.name(), TensorSource.of(DType.F32, values, info.shape()));
            }
        }
        edit.accept(tensors);
        Files.delete(file);
        SafeTensorsWriter.write(file, tensors);
    }

    @Test
    void unknownArchitectureNamesItAndTheSupportedSet() throws IOException {
        Path folder = withConfig("mamba2", config -> config.putArray("architectures").add("LlamaForCausalLM"));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json").hasMessageContaining("LlamaForCausalLM")
                .hasMessageContaining("Mamba2ForCausalLM").hasMessageContaining("NemotronHForCausalLM");
    }

    @Test
    void expertsTheCheckpointLacksAreNamedAtLoad() throws IOException {
        Path folder = withConfig("granitemoehybrid", config -> config.put("num_local_experts", 8)
                .put("num_experts_per_tok", 2).put("intermediate_size", 16));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("model.layers.0.block_sparse_moe.router.layer.weight");
    }

    @Test
    void moreExpertsATokenThanExpertsIsRefusedAtLoad() throws IOException {
        Path folder = withConfig("granitemoehybrid_moe", config -> config.put("num_experts_per_tok", 9));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("num_experts_per_tok is 9").hasMessageContaining("num_local_experts is 8");
    }

    @Test
    void expertsOfTheWrongWidthAreNamedAtLoad() throws IOException {
        Path folder = withConfig("granitemoehybrid_moe", config -> config.put("intermediate_size", 12));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("block_sparse_moe.input_linear.weight").hasMessageContaining("[8, 32, 32]")
                .hasMessageContaining("[8, 24, 32]");
    }

    @Test
    void nemotronExpertsTheCheckpointLacksAreNamedAtLoad() throws IOException {
        Path folder = withConfig("nemotron_h_moe", config -> { });
        rewriteWeights(folder, tensors -> tensors.remove("backbone.layers.5.mixer.experts.0.up_proj.weight"));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("backbone.layers.5.mixer.experts.0.up_proj.weight")
                .hasMessageContaining("backbone.layers.5.mixer.experts.up_proj");
    }

    @Test
    void nemotronCorrectionBiasTheCheckpointLacksIsNamedAtLoad() throws IOException {
        Path noBias = withConfig("nemotron_h_moe", config -> { });
        rewriteWeights(noBias, tensors -> tensors.remove("backbone.layers.1.mixer.gate.e_score_correction_bias"));
        assertThatThrownBy(() -> LoadedModel.load(noBias)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("backbone.layers.1.mixer.gate.e_score_correction_bias");
    }

    @Test
    void nemotronRouterThatCannotChooseIsRefusedAtLoad() throws IOException {
        // 3 experts a token from 1 kept group of 2 (8 experts in 4 groups)
        Path folder = withConfig("nemotron_h_moe", config -> config.put("n_group", 4));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json").hasMessageContaining("n_group 4")
                .hasMessageContaining("num_experts_per_tok 3");
    }

    @Test
    void nemotronExpertsOfNoWidthAreRefusedAtLoad() throws IOException {
        Path folder = withConfig("nemotron_h_moe", config -> config.put("moe_intermediate_size", 0));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json").hasMessageContaining("moe_intermediate_size 0");
    }

    @Test
    void nemotronLatentProjectionTheCheckpointLacksIsNamedAtLoad() throws IOException {
        Path folder = withConfig("nemotron_h_latent", config -> { });
        rewriteWeights(folder, tensors -> tensors.remove("backbone.layers.3.mixer.fc2_latent_proj.weight"));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("backbone.layers.3.mixer.fc2_latent_proj.weight");
    }

    @Test
    void nemotronLatentSizeTheExpertsDoNotHaveIsRefusedAtLoad() throws IOException {
        // experts of the hidden size (32) in a config that says they read 16 values
        Path folder = withConfig("nemotron_h_moe", config -> config.put("moe_latent_size", 16));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("backbone.layers.1.mixer.experts.0.up_proj.weight")
                .hasMessageContaining("[16, 16]").hasMessageContaining("[16, 32]");
    }

    @Test
    void nemotronLatentSizeBelowOneIsRefusedAtLoad() throws IOException {
        Path folder = withConfig("nemotron_h_latent", config -> config.put("moe_latent_size", 0));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json").hasMessageContaining("moe_latent_size is 0");
    }

    @Test
    void missingConfigKeyIsNamed() throws IOException {
        Path folder = withConfig("bamba", config -> config.remove("hidden_size"));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json").hasMessageContaining("hidden_size");
    }

    @Test
    void missingTensorIsNamed() throws IOException {
        Path folder = withConfig("bamba", config -> { });
        rewriteWeights(folder, tensors -> tensors.remove("model.layers.0.mamba.dt_bias"));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("model.safetensors").hasMessageContaining("model.layers.0.mamba.dt_bias");
    }

    @Test
    void misShapedTensorNamesBothShapes() throws IOException {
        Path folder = withConfig("granitemoehybrid_rope", config -> { });
        rewriteWeights(folder, tensors -> tensors.put("model.layers.1.self_attn.k_proj.weight",
                TensorSource.of(DType.F32, new float[7 * 32], 7, 32)));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("model.layers.1.self_attn.k_proj.weight").hasMessageContaining("[7, 32]");
    }

    @Test
    void configShapeThatContradictsTheWeightsFailsAtLoad() throws IOException {
        Path folder = withConfig("mamba2", config -> config.put("state_size", 16));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("backbone.layers.0.mixer.in_proj.weight");
    }

    @Test
    void untiedModelWithoutLmHeadFailsAtLoad() throws IOException {
        Path folder = withConfig("mamba2", config -> { });
        rewriteWeights(folder, tensors -> tensors.remove("lm_head.weight"));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("lm_head.weight").hasMessageContaining("tie_word_embeddings");
    }

    @Test
    void unsupportedActivationFailsAtLoad() throws IOException {
        Path folder = withConfig("granitemoehybrid", config -> config.put("hidden_act", "gelu"));
        assertThatThrownBy(() -> LoadedModel.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("hidden_act").hasMessageContaining("gelu").hasMessageContaining("silu");
    }

    @Test
    void legacyLayerTypeSpellingsAndBareInfinityLoad() throws IOException {
        Path folder = withConfig("granitemoehybrid", config -> {
            config.remove("time_step_limit");
            var types = config.putArray("layer_types");
            types.add("mamba").add("attention").add("mamba").add("attention");
        });
        String text = Files.readString(folder.resolve("config.json"));
        Files.writeString(folder.resolve("config.json"),
                text.replaceFirst("\\{", "{\"time_step_limit\": [0.0, Infinity],"));
        try (LoadedModel model = LoadedModel.load(folder)) {
            org.assertj.core.api.Assertions.assertThat(model.config().countBlocks(BlockSpec.Attention.class)).isEqualTo(2);
        }
    }
}
