package dev.coil.server.cli;

import java.util.Map;
import java.util.Optional;

/**
 * What Coil does instead of a vLLM flag it does not take, said where a command line copied from
 * `vllm serve` fails on it: the flag Coil spells otherwise, or why there is none. (vLLM's flags that
 * Coil takes as they are, --max-num-seqs, --max-num-batched-tokens, --max-model-len, --revision,
 * --download-dir, --trust-remote-code and others, are its own options.)
 */
public final class VllmFlags {

    private static final String PARALLEL = "Coil holds a model's weights on one GPU; --devices cuda:0,cuda:1 shards"
            + " one long context over several (context parallelism, --context-parallel).";
    private static final String QUANTIZED = "Coil loads F32, BF16 and F16 safetensors; quantized checkpoints are not"
            + " read.";
    private static final String CHUNKED = "Coil always takes prompts in chunks of --max-batched-tokens.";
    private static final Map<String, String> INSTEAD = Map.ofEntries(
            Map.entry("--gpu-memory-utilization", "Coil sizes its KV and state cache with --cache-memory: a fraction"
                    + " of the memory free after the weights (0.9) or a size (40G)."),
            Map.entry("--kv-cache-dtype", "Coil's is --kv-dtype bf16|f32."),
            Map.entry("--tensor-parallel-size", PARALLEL),
            Map.entry("-tp", PARALLEL),
            Map.entry("--pipeline-parallel-size", PARALLEL),
            Map.entry("-pp", PARALLEL),
            Map.entry("--data-parallel-size", PARALLEL),
            Map.entry("-dp", PARALLEL),
            Map.entry("--dtype", "Coil computes in the checkpoint's own dtype (F32, BF16 or F16); there is nothing to"
                    + " choose."),
            Map.entry("--quantization", QUANTIZED),
            Map.entry("-q", QUANTIZED),
            Map.entry("--enable-chunked-prefill", CHUNKED),
            Map.entry("--no-enable-chunked-prefill", CHUNKED),
            Map.entry("--enforce-eager", "Coil replays its GPU decode steps as CUDA graphs, and has no eager mode."),
            Map.entry("--tokenizer", "Coil reads the tokenizer of the model's folder (tokenizer.json)."),
            Map.entry("--enable-lora", "Coil serves no LoRA adapters."),
            Map.entry("--speculative-config", "Coil has no speculative decoding."));

    private VllmFlags() {
    }

    /** What to use instead of {@code argument} (a flag, "--flag=value" too), where it is vLLM's and Coil lacks it. */
    public static Optional<String> instead(String argument) {
        int equals = argument.indexOf('=');
        String flag = equals < 0 ? argument : argument.substring(0, equals);
        String hint = INSTEAD.get(flag);
        return hint == null ? Optional.empty() : Optional.of("vLLM's " + flag + ": " + hint);
    }
}
