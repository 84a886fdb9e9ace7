package dev.coil.engine.bench;

import static dev.coil.engine.bench.RandomCheckpoint.constant;
import static dev.coil.engine.bench.RandomCheckpoint.uniform;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.load.DType;
import dev.coil.engine.load.SafeTensorsWriter;
import dev.coil.engine.load.TensorSource;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Writes a random NemotronHForCausalLM checkpoint in the hub's layout (backbone.* names, one tensor
 * per routed expert, the router's correction bias in f32) for benchmarks: shapes of real models
 * without their weights.
 */
public final class RandomNemotronCheckpoint {

    /**
     * pattern: one character a block, M (Mamba-2), * (attention), E (routed experts beside a shared
     * one); the router keeps one group (n_group 1) and scales its normalised weights by 2.5. latent:
     * the experts' moe_latent_size (fc1_latent_proj and fc2_latent_proj around them), or 0 for none.
     */
    public record Shape(int vocab, int hidden, String pattern, int queryHeads, int kvHeads, int headDim,
            int mambaHeads, int mambaHeadDim, int groups, int stateSize, int experts, int perToken, int expertWidth,
            int sharedWidth, int latent) {

        /** Experts without a latent projection. */
        public Shape(int vocab, int hidden, String pattern, int queryHeads, int kvHeads, int headDim, int mambaHeads,
                int mambaHeadDim, int groups, int stateSize, int experts, int perToken, int expertWidth,
                int sharedWidth) {
            this(vocab, hidden, pattern, queryHeads, kvHeads, headDim, mambaHeads, mambaHeadDim, groups, stateSize,
                    experts, perToken, expertWidth, sharedWidth, 0);
        }

        /**
         * The first {@code layers} blocks of Nemotron-3-Nano-30B-A3B's published config (52 blocks
         * MEMEM*EMEMEM*..., hidden 2688, 128 experts of 1856 of which 6 take a token beside a shared
         * expert of 3712, Mamba-2 with 64 heads × 64, 8 groups, state 128, attention 32 query / 2 kv
         * heads × 128, vocabulary 131072). 13 blocks (MEMEM*EMEMEM*) are about 7.4B parameters.
         */
        public static Shape nemotronNanoFirstBlocks(int layers) {
            String pattern = "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME";
            return new Shape(131072, 2688, pattern.substring(0, layers), 32, 2, 128, 64, 64, 8, 128, 128, 6, 1856,
                    3712);
        }
    }

    private RandomNemotronCheckpoint() {
    }

    /** Writes the folder (creating it) and returns it. Deterministic for a given seed. */
    public static Path write(Path folder, Shape shape, DType dtype, long seed) throws IOException {
        Files.createDirectories(folder);
        Files.writeString(folder.resolve("config.json"), config(shape));
        Map<String, TensorSource> tensors = new LinkedHashMap<>();
        SplittableRandom seeds = new SplittableRandom(seed);
        int h = shape.hidden();
        int inner = shape.mambaHeads() * shape.mambaHeadDim();
        int channels = inner + 2 * shape.groups() * shape.stateSize();
        int heads = shape.mambaHeads();
        tensors.put("backbone.embeddings.weight", uniform(dtype, seeds.nextLong(), 0.02, shape.vocab(), h));
        tensors.put("lm_head.weight", uniform(dtype, seeds.nextLong(), 0.02, shape.vocab(), h));
        tensors.put("backbone.norm_f.weight", constant(dtype, 1f, h));
        for (int i = 0; i < shape.pattern().length(); i++) {
            String p = "backbone.layers." + i + ".";
            String m = p + "mixer.";
            tensors.put(p + "norm.weight", constant(dtype, 1f, h));
            switch (shape.pattern().charAt(i)) {
                case 'M' -> {
                    tensors.put(m + "in_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, inner + channels + heads, h));
                    tensors.put(m + "conv1d.weight", uniform(dtype, seeds.nextLong(), 0.3, channels, 1, 4));
                    tensors.put(m + "conv1d.bias", constant(dtype, 0f, channels));
                    RandomCheckpoint.putMambaScalars(tensors, m, dtype, heads);
                    tensors.put(m + "norm.weight", constant(dtype, 1f, inner));
                    tensors.put(m + "out_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, h, inner));
                }
                case '*' -> {
                    int query = shape.queryHeads() * shape.headDim();
                    int keyValue = shape.kvHeads() * shape.headDim();
                    tensors.put(m + "q_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, query, h));
                    tensors.put(m + "k_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, keyValue, h));
                    tensors.put(m + "v_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, keyValue, h));
                    tensors.put(m + "o_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, h, query));
                }
                case 'E' -> {
                    tensors.put(m + "gate.weight", uniform(dtype, seeds.nextLong(), 0.02, shape.experts(), h));
                    tensors.put(m + "gate.e_score_correction_bias", constant(DType.F32, 0f, shape.experts()));
                    int size = shape.latent() > 0 ? shape.latent() : h; // what the experts read and write
                    if (shape.latent() > 0) {
                        tensors.put(m + "fc1_latent_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, size, h));
                        tensors.put(m + "fc2_latent_proj.weight", uniform(dtype, seeds.nextLong(), 0.05, h, size));
                    }
                    for (int e = 0; e < shape.experts(); e++) {
                        String expert = m + "experts." + e + ".";
                        tensors.put(expert + "up_proj.weight",
                                uniform(dtype, seeds.nextLong(), 0.02, shape.expertWidth(), size));
                        tensors.put(expert + "down_proj.weight",
                                uniform(dtype, seeds.nextLong(), 0.02, size, shape.expertWidth()));
                    }
                    tensors.put(m + "shared_experts.up_proj.weight",
                            uniform(dtype, seeds.nextLong(), 0.02, shape.sharedWidth(), h));
                    tensors.put(m + "shared_experts.down_proj.weight",
                            uniform(dtype, seeds.nextLong(), 0.02, h, shape.sharedWidth()));
                }
                default -> throw new IllegalArgumentException("block '" + shape.pattern().charAt(i)
                        + "': the random NemotronH checkpoint writes M, * and E blocks");
            }
        }
        SafeTensorsWriter.write(folder.resolve("model.safetensors"), tensors);
        return folder;
    }

    static String config(Shape shape) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = json.createObjectNode();
        config.putArray("architectures").add("NemotronHForCausalLM");
        config.put("model_type", "nemotron_h");
        config.put("vocab_size", shape.vocab());
        config.put("hidden_size", shape.hidden());
        config.put("hybrid_override_pattern", shape.pattern());
        config.put("num_hidden_layers", shape.pattern().length());
        config.put("num_attention_heads", shape.queryHeads());
        config.put("num_key_value_heads", shape.kvHeads());
        config.put("head_dim", shape.headDim());
        config.put("intermediate_size", shape.expertWidth());
        config.put("mamba_num_heads", shape.mambaHeads());
        config.put("mamba_head_dim", shape.mambaHeadDim());
        config.put("n_groups", shape.groups());
        config.put("ssm_state_size", shape.stateSize());
        config.put("conv_kernel", 4);
        config.put("chunk_size", 128);
        config.put("use_conv_bias", true);
        config.put("mamba_hidden_act", "silu");
        config.put("mlp_hidden_act", "relu2");
        config.put("n_routed_experts", shape.experts());
        config.put("num_experts_per_tok", shape.perToken());
        config.put("moe_intermediate_size", shape.expertWidth());
        config.put("moe_shared_expert_intermediate_size", shape.sharedWidth());
        if (shape.latent() > 0) {
            config.put("moe_latent_size", shape.latent());
        } else {
            config.putNull("moe_latent_size");
        }
        config.put("n_shared_experts", 1);
        config.put("n_group", 1);
        config.put("topk_group", 1);
        config.put("norm_topk_prob", true);
        config.put("routed_scaling_factor", 2.5);
        config.put("layer_norm_epsilon", 1e-5);
        config.put("max_position_embeddings", 262144);
        config.put("tie_word_embeddings", false);
        return json.writerWithDefaultPrettyPrinter().writeValueAsString(config);
    }
}
