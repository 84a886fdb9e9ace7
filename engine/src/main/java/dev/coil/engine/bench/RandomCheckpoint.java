package dev.coil.engine.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
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
 * Writes a random GraniteMoeHybridForCausalLM folder (config.json + model.safetensors), for
 * benchmarks that need the shape of a real model but no download. Values are uniform with the
 * standard deviation of transformers' init (0.02) so activations stay in a realistic range.
 */
public final class RandomCheckpoint {

    /**
     * The shape ../shared/bench/gpu_anchors.py benchmarks: 28 layers of hidden 768, attention every
     * seventh layer (12 query / 4 kv heads), Mamba-2 with 24 heads × 64 and state 128, FFN 2048,
     * vocabulary 49160: about 304M parameters.
     */
    public record Shape(int vocab, int hidden, int layers, int attentionEvery, int queryHeads, int kvHeads,
            int mambaHeads, int mambaHeadDim, int stateSize, int ffn, int experts, int expertsPerToken,
            int expertWidth) {

        /** A dense shape (no routed experts; ffn is the shared MLP's width). */
        public Shape(int vocab, int hidden, int layers, int attentionEvery, int queryHeads, int kvHeads,
                int mambaHeads, int mambaHeadDim, int stateSize, int ffn) {
            this(vocab, hidden, layers, attentionEvery, queryHeads, kvHeads, mambaHeads, mambaHeadDim, stateSize, ffn,
                    0, 0, 0);
        }

        public static Shape granite300m() {
            return new Shape(49160, 768, 28, 7, 12, 4, 24, 64, 128, 2048);
        }

        /**
         * A mixture of experts of granite-4.0-h-tiny's published size (hidden 1536, 40 layers, 64
         * experts of which 6 take each token): attention every tenth layer (12 query / 4 kv heads),
         * Mamba-2 with 48 heads × 64 and state 128, a shared MLP of 1024 beside experts of 512,
         * vocabulary 100352: about 7.1B parameters, 1.4B of them read per token.
         */
        public static Shape graniteTinyShaped() {
            return new Shape(100352, 1536, 40, 10, 12, 4, 48, 64, 128, 1024, 64, 6, 512);
        }

        boolean isAttention(int layer) {
            return layer % attentionEvery == attentionEvery - 1;
        }
    }

    private RandomCheckpoint() {
    }

    /** Writes the folder (creating it) and returns it. Deterministic for a given seed. */
    public static Path write(Path folder, Shape shape, DType dtype, long seed) throws IOException {
        Files.createDirectories(folder);
        Files.writeString(folder.resolve("config.json"), config(shape));
        Map<String, TensorSource> tensors = new LinkedHashMap<>();
        SplittableRandom seeds = new SplittableRandom(seed);
        int h = shape.hidden();
        int inner = shape.mambaHeads() * shape.mambaHeadDim();
        int groupWidth = shape.stateSize();
        int headDim = h / shape.queryHeads();
        tensors.put("model.embed_tokens.weight", uniform(dtype, seeds.nextLong(), 0.02, shape.vocab(), h));
        tensors.put("lm_head.weight", uniform(dtype, seeds.nextLong(), 0.02, shape.vocab(), h));
        tensors.put("model.norm.weight", constant(dtype, 1f, h));
        for (int i = 0; i < shape.layers(); i++) {
            String p = "model.layers." + i + ".";
            tensors.put(p + "input_layernorm.weight", constant(dtype, 1f, h));
            tensors.put(p + "post_attention_layernorm.weight", constant(dtype, 1f, h));
            tensors.put(p + "shared_mlp.input_linear.weight", uniform(dtype, seeds.nextLong(), 0.02, 2 * shape.ffn(), h));
            tensors.put(p + "shared_mlp.output_linear.weight", uniform(dtype, seeds.nextLong(), 0.02, h, shape.ffn()));
            if (shape.experts() > 0) {
                String moe = p + "block_sparse_moe.";
                tensors.put(moe + "router.layer.weight", uniform(dtype, seeds.nextLong(), 0.02, shape.experts(), h));
                tensors.put(moe + "input_linear.weight",
                        uniform(dtype, seeds.nextLong(), 0.02, shape.experts(), 2 * shape.expertWidth(), h));
                tensors.put(moe + "output_linear.weight",
                        uniform(dtype, seeds.nextLong(), 0.02, shape.experts(), h, shape.expertWidth()));
            }
            if (shape.isAttention(i)) {
                tensors.put(p + "self_attn.q_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, shape.queryHeads() * headDim, h));
                tensors.put(p + "self_attn.k_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, shape.kvHeads() * headDim, h));
                tensors.put(p + "self_attn.v_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, shape.kvHeads() * headDim, h));
                tensors.put(p + "self_attn.o_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, h, shape.queryHeads() * headDim));
            } else {
                int channels = inner + 2 * groupWidth;
                int heads = shape.mambaHeads();
                tensors.put(p + "mamba.in_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, inner + channels + heads, h));
                tensors.put(p + "mamba.conv1d.weight", uniform(dtype, seeds.nextLong(), 0.3, channels, 1, 4));
                tensors.put(p + "mamba.conv1d.bias", constant(dtype, 0f, channels));
                putMambaScalars(tensors, p + "mamba.", dtype, heads);
                tensors.put(p + "mamba.norm.weight", constant(dtype, 1f, inner));
                tensors.put(p + "mamba.out_proj.weight", uniform(dtype, seeds.nextLong(), 0.02, h, inner));
            }
        }
        SafeTensorsWriter.write(folder.resolve("model.safetensors"), tensors);
        return folder;
    }

    static String config(Shape shape) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = json.createObjectNode();
        config.putArray("architectures").add("GraniteMoeHybridForCausalLM");
        config.put("model_type", "granitemoehybrid");
        config.put("vocab_size", shape.vocab());
        config.put("hidden_size", shape.hidden());
        config.put("intermediate_size", shape.experts() > 0 ? shape.expertWidth() : shape.ffn());
        config.put("shared_intermediate_size", shape.ffn());
        config.put("num_hidden_layers", shape.layers());
        config.put("num_attention_heads", shape.queryHeads());
        config.put("num_key_value_heads", shape.kvHeads());
        ArrayNode types = config.putArray("layer_types");
        for (int i = 0; i < shape.layers(); i++) {
            types.add(shape.isAttention(i) ? "attention" : "mamba");
        }
        config.put("mamba_n_heads", shape.mambaHeads());
        config.put("mamba_d_head", shape.mambaHeadDim());
        config.put("mamba_d_state", shape.stateSize());
        config.put("mamba_n_groups", 1);
        config.put("mamba_expand", 2);
        config.put("mamba_d_conv", 4);
        config.put("mamba_chunk_size", 256);
        config.put("num_local_experts", shape.experts());
        config.put("num_experts_per_tok", shape.expertsPerToken());
        config.put("position_embedding_type", "rope");
        config.putObject("rope_parameters").put("rope_theta", 10000.0).put("rope_type", "default");
        config.put("max_position_embeddings", 32768);
        config.put("attention_multiplier", 1.0 / Math.sqrt(shape.hidden() / (double) shape.queryHeads()));
        config.put("rms_norm_eps", 1e-5);
        config.put("hidden_act", "silu");
        config.put("tie_word_embeddings", false);
        return json.writerWithDefaultPrettyPrinter().writeValueAsString(config);
    }

    /**
     * A Mamba-2 mixer's per-head A_log, dt_bias and D under {@code prefix}: A from 1 to 16 and dt from
     * 0.001 to 0.1 spread over the heads (dt_bias the inverse softplus of dt), as Mamba-2's
     * initialisation spreads them, D 1.
     */
    static void putMambaScalars(Map<String, TensorSource> tensors, String prefix, DType dtype, int heads) {
        float[] aLog = new float[heads];
        float[] dtBias = new float[heads];
        for (int head = 0; head < heads; head++) {
            aLog[head] = (float) Math.log(1 + head * 15.0 / Math.max(1, heads - 1));
            double dt = Math.exp(Math.log(0.001) + (Math.log(0.1) - Math.log(0.001)) * head / Math.max(1, heads - 1));
            dtBias[head] = (float) (dt + Math.log(-Math.expm1(-dt)));
        }
        tensors.put(prefix + "A_log", TensorSource.of(dtype, aLog, heads));
        tensors.put(prefix + "dt_bias", TensorSource.of(dtype, dtBias, heads));
        tensors.put(prefix + "D", constant(dtype, 1f, heads));
    }

    static TensorSource constant(DType dtype, float value, int length) {
        float[] values = new float[length];
        java.util.Arrays.fill(values, value);
        return TensorSource.of(dtype, values, length);
    }

    /** Uniform values with the given standard deviation, generated chunk by chunk from one seed. */
    static TensorSource uniform(DType dtype, long seed, double std, long... shape) {
        double halfWidth = std * Math.sqrt(3);
        return TensorSource.generated(dtype, shape, (offset, chunk) -> {
            SplittableRandom random = new SplittableRandom(seed ^ (offset * 0x9E3779B97F4A7C15L));
            for (int i = 0; i < chunk.length; i++) {
                chunk[i] = (float) ((random.nextDouble() * 2 - 1) * halfWidth);
            }
        });
    }
}
