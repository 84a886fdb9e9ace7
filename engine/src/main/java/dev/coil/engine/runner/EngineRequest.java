package dev.coil.engine.runner;

import java.util.Objects;

/**
 * One completion request as the engine sees it: prompt token ids, how to sample, and what to
 * report back. The HTTP server turns each OpenAI choice into one of these (n choices: n requests).
 *
 * @param promptTokens the prompt, at least one token id, all inside the vocabulary
 * @param sampling temperature, filters, penalties, seed, stops and max_tokens
 * @param ignoreEndOfSequence keep going past the model's end-of-sequence tokens (vLLM's ignore_eos)
 * @param logprobs per generated token: -1 none; 0 the chosen token's logprob; k > 0 also the k most likely
 * @param promptLogprobs per prompt token (after the first): -1 none; 0 its logprob; k > 0 also the top k.
 *                       Requests that ask for them skip the prefix cache: every position must be computed.
 * @param priority            under priority scheduling ({@link EngineOptions#priorityScheduling}), lower runs
 *                            sooner, as vLLM's {@code priority}; 0 is the default, and the only value first come
 *                            first served takes
 * @param cacheSalt           vLLM's cache_salt, or null: prompts share cached prefixes only with requests of the
 *                            same salt (a tenant's requests cannot tell from timing what another's prompts held)
 */
public record EngineRequest(int[] promptTokens, SamplingParams sampling, boolean ignoreEndOfSequence, int logprobs,
        int promptLogprobs, int priority, String cacheSalt) {

    /** Most top logprobs one position may ask for, as vLLM caps them. */
    public static final int MAX_TOP_LOGPROBS = 20;

    public EngineRequest {
        Objects.requireNonNull(promptTokens, "prompt tokens");
        Objects.requireNonNull(sampling, "sampling");
        if (promptTokens.length == 0) {
            throw new IllegalArgumentException("prompt must contain at least one token");
        }
        if (logprobs < -1 || logprobs > MAX_TOP_LOGPROBS) {
            throw new IllegalArgumentException("logprobs must be in [0, " + MAX_TOP_LOGPROBS + "], got " + logprobs);
        }
        if (promptLogprobs < -1 || promptLogprobs > MAX_TOP_LOGPROBS) {
            throw new IllegalArgumentException(
                    "prompt_logprobs must be in [0, " + MAX_TOP_LOGPROBS + "], got " + promptLogprobs);
        }
        if (cacheSalt != null && cacheSalt.isEmpty()) {
            throw new IllegalArgumentException("cache_salt must be a non-empty string when given");
        }
        promptTokens = promptTokens.clone();
    }

    /** A request of the default priority, 0, and no cache salt. */
    public EngineRequest(int[] promptTokens, SamplingParams sampling, boolean ignoreEndOfSequence, int logprobs,
            int promptLogprobs) {
        this(promptTokens, sampling, ignoreEndOfSequence, logprobs, promptLogprobs, 0, null);
    }

    /** A plain request: no logprobs, stops at end-of-sequence. */
    public static EngineRequest of(int[] promptTokens, SamplingParams sampling) {
        return new EngineRequest(promptTokens, sampling, false, -1, -1);
    }

    @Override
    public int[] promptTokens() {
        return promptTokens.clone();
    }

    int promptLength() {
        return promptTokens.length;
    }

    int promptToken(int index) {
        return promptTokens[index];
    }
}
