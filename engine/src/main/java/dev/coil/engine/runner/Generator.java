package dev.coil.engine.runner;

import dev.coil.engine.model.HybridModel;
import dev.coil.engine.model.Phase;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.tokenizer.StreamingDecoder;
import java.util.Arrays;
import java.util.Set;
import java.util.function.Consumer;

/**
 * One sequence from prompt to finish: prefill the prompt in chunks, then decode token by token,
 * sampling each from the logits, until an end-of-sequence token (left out of the output), a stop
 * token (kept in it, as vLLM keeps it), a stop string, or max_tokens. Text is streamed to a listener
 * as it becomes final (whole UTF-8 characters, never the start of a stop string).
 */
public final class Generator {

    /** Prompt tokens per prefill call: bounds activation memory; results don't depend on it. */
    public static final int DEFAULT_PREFILL_CHUNK = 512;

    private final LoadedModel loaded;
    private final Ops ops;
    private final int prefillChunk;

    public Generator(LoadedModel loaded, Ops ops, int prefillChunk) {
        if (prefillChunk <= 0) {
            throw new IllegalArgumentException("prefill chunk must be positive, got " + prefillChunk);
        }
        this.loaded = loaded;
        this.ops = ops;
        this.prefillChunk = prefillChunk;
    }

    public Generator(LoadedModel loaded, Ops ops) {
        this(loaded, ops, DEFAULT_PREFILL_CHUNK);
    }

    /** Prefills {@code tokens} into {@code sequence} in chunks and returns the logits after the last one. */
    public float[] prefill(SequenceState sequence, int[] tokens) {
        float[] logits = null;
        for (int start = 0; start < tokens.length; start += prefillChunk) {
            int end = Math.min(tokens.length, start + prefillChunk);
            logits = loaded.model().forward(ops, sequence, Arrays.copyOfRange(tokens, start, end), Phase.PREFILL, false);
        }
        return logits;
    }

    public Generation generate(int[] prompt, SamplingParams params, Consumer<String> onText) {
        return generate(prompt, params, false, onText);
    }

    /**
     * @param ignoreEndOfSequence keep going past the model's end-of-sequence tokens (vLLM's ignore_eos;
     *                            benchmarks and comparisons with transformers' fixed-length generate)
     */
    public Generation generate(int[] prompt, SamplingParams params, boolean ignoreEndOfSequence,
            Consumer<String> onText) {
        HybridModel model = loaded.model();
        SequenceState sequence = model.newSequence();
        return generate(loaded, new Steps() {
            @Override
            public float[] prefill(int[] tokens) {
                return Generator.this.prefill(sequence, tokens);
            }

            @Override
            public float[] decode(int token) {
                return model.forward(ops, sequence, new int[] {token}, Phase.DECODE, false);
            }
        }, prompt, params, ignoreEndOfSequence, onText);
    }

    /** How a sequence advances: the whole prompt, then one token at a time; each returns the next logits [vocab]. */
    public interface Steps {
        float[] prefill(int[] prompt);

        float[] decode(int token);
    }

    /**
     * The generation loop over any way of running the sequence ({@code steps}): sample each token
     * from the logits, stop at an end-of-sequence or stop token, a stop string or max_tokens, and
     * stream the text that became final.
     */
    public static Generation generate(LoadedModel loaded, Steps steps, int[] prompt, SamplingParams params,
            boolean ignoreEndOfSequence, Consumer<String> onText) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("prompt must contain at least one token");
        }
        int maxTokens = loaded.generationLimit(prompt.length, params.maxTokens());
        Set<Integer> endIds = ignoreEndOfSequence ? Set.of() : loaded.endOfSequenceIds();
        Sampler sampler = new Sampler(params, endIds);
        TokenHistory history = new TokenHistory(prompt);
        StreamingDecoder decoder = loaded.hasTokenizer() ? StreamingDecoder.answering(loaded.tokenizer(), prompt,
                params.skipSpecialTokens()) : null;
        StopMatcher stops = new StopMatcher(params.stopStrings(), params.includeStopStringInOutput());
        StringBuilder text = new StringBuilder();

        long start = System.nanoTime();
        float[] logits = steps.prefill(prompt);
        long prefilled = System.nanoTime();

        int[] generated = new int[Math.min(maxTokens, 256)];
        int count = 0;
        int decodeSteps = 0;
        FinishReason finish = FinishReason.LENGTH;
        while (count < maxTokens) {
            int token = sampler.sample(logits, history);
            if (endIds.contains(token)) {
                finish = FinishReason.STOP;
                break;
            }
            if (count == generated.length) {
                generated = Arrays.copyOf(generated, Math.min(maxTokens, 2 * generated.length));
            }
            generated[count++] = token;
            history.append(token);
            boolean matching = count > params.minTokens(); // stop strings count after min_tokens
            if (decoder != null && emit(stops.accept(decoder.accept(token), matching), text, onText)) {
                finish = FinishReason.STOP;
                break;
            }
            if (params.stopTokenIds().contains(token)) {
                finish = FinishReason.STOP;
                break;
            }
            if (count < maxTokens) {
                logits = steps.decode(token);
                decodeSteps++;
            }
        }
        if (decoder != null && !stops.stopped() && !emit(stops.accept(decoder.flush()), text, onText)) {
            emit(new StopMatcher.Result(stops.flush(), false, null), text, onText);
        }
        long done = System.nanoTime();
        Timings timings = new Timings(prompt.length, (prefilled - start) / 1e6, decodeSteps, (done - prefilled) / 1e6);
        return new Generation(Arrays.copyOf(generated, count), text.toString(), finish, timings);
    }

    /** Appends and forwards a stop matcher's released text; true when a stop string was hit. */
    private static boolean emit(StopMatcher.Result result, StringBuilder text, Consumer<String> onText) {
        String delta = result.text();
        if (delta != null && !delta.isEmpty()) {
            text.append(delta);
            onText.accept(delta);
        }
        return result.stopped();
    }
}
