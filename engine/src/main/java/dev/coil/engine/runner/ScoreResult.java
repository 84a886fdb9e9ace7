package dev.coil.engine.runner;

import java.util.List;

/**
 * Prompt scoring: logprobs[i] is log p(token i | tokens before it) (NaN at 0, which has no
 * context); topLogprobs.get(i) lists the most likely tokens for position i + 1.
 */
public record ScoreResult(int[] tokenIds, float[] logprobs, List<List<TokenLogprob>> topLogprobs) {
}
