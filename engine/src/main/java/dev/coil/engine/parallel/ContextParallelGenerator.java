package dev.coil.engine.parallel;

import dev.coil.engine.runner.FinishReason;
import dev.coil.engine.runner.Generation;
import dev.coil.engine.runner.Generator;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.Sampler;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.Timings;
import dev.coil.engine.runner.TokenHistory;
import java.util.Arrays;
import java.util.Set;

/**
 * {@link Generator}'s prefill-then-decode, with the prompt prefilled sharded over virtual devices
 * and every generated token decoded over the sharded context. Stops at an end-of-sequence or stop
 * token or at max_tokens (stop strings are not matched here).
 */
public final class ContextParallelGenerator {

    private final LoadedModel loaded;
    private final ContextParallelModel model;
    private final ShardLayout layout;

    public ContextParallelGenerator(LoadedModel loaded, VirtualDevices devices, ShardLayout layout) {
        this.loaded = loaded;
        this.model = new ContextParallelModel(loaded.model(), devices);
        this.layout = layout;
    }

    public RingGeneration generate(int[] prompt, SamplingParams params, boolean ignoreEndOfSequence) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("prompt must contain at least one token");
        }
        int maxTokens = loaded.generationLimit(prompt.length, params.maxTokens());
        Set<Integer> endIds = ignoreEndOfSequence ? Set.of() : loaded.endOfSequenceIds();
        Sampler sampler = new Sampler(params);
        TokenHistory history = new TokenHistory(prompt);

        long start = System.nanoTime();
        ShardedSequence sequence = model.newSequence(layout, prompt.length);
        float[] logits = model.lastLogits(sequence, model.prefill(sequence, prompt));
        long prefilled = System.nanoTime();

        int[] generated = new int[Math.min(maxTokens, 256)];
        int count = 0;
        FinishReason finish = FinishReason.LENGTH;
        while (count < maxTokens) {
            int token = sampler.sample(logits, history);
            if (endIds.contains(token) || params.stopTokenIds().contains(token)) {
                finish = FinishReason.STOP;
                break;
            }
            if (count == generated.length) {
                generated = Arrays.copyOf(generated, Math.min(maxTokens, 2 * generated.length));
            }
            generated[count++] = token;
            history.append(token);
            if (count < maxTokens) {
                logits = model.decode(sequence, token);
            }
        }
        long done = System.nanoTime();
        int[] tokens = Arrays.copyOf(generated, count);
        String text = loaded.hasTokenizer() ? loaded.tokenizer().decode(tokens, true) : "";
        Timings timings = new Timings(prompt.length, (prefilled - start) / 1e6, Math.max(0, count - 1),
                (done - prefilled) / 1e6);
        return new RingGeneration(new Generation(tokens, text, finish, timings), sequence.sharding());
    }
}
