package dev.coil.engine.runner;

import java.util.List;

/**
 * Prompt scoring: logprobs[i] is log p(token i | tokens before it) (NaN at 0, which has no
 * context) and ranks[i] its rank there ({@link Sampler#rank}; 0 at 0); topLogprobs.get(i) lists the
 * most likely tokens for position i + 1.
 */
public record ScoreResult(int[] tokenIds, float[] logprobs, int[] ranks, List<List<TokenLogprob>> topLogprobs) {
}
