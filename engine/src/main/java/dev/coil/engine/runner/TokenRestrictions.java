package dev.coil.engine.runner;

import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;

/**
 * What vLLM's allowed_token_ids and bad_words forbid a request's next token: every token outside the
 * allowed list, and the last token of each bad word whose other tokens the output has just
 * generated (a one-token word always). Both give -infinity before the logit bias and the penalties:
 * the allowed tokens as a mask ({@link TokenBits}, on the host and in a backend's draw alike), the
 * forbidden ones on the host ({@link #ban}) and as -infinity biases in a draw.
 */
final class TokenRestrictions {

    private static final TokenRestrictions NONE = new TokenRestrictions(null, List.of());

    /** The allowed tokens ({@link TokenBits}); null: all are. */
    private final int[] allowedBits;
    private final List<int[]> badWords;

    private TokenRestrictions(int[] allowedBits, List<int[]> badWords) {
        this.allowedBits = allowedBits;
        this.badWords = badWords;
    }

    static TokenRestrictions of(SamplingParams sampling) {
        if (sampling.allowedTokenIds().isEmpty() && sampling.badWords().isEmpty()) {
            return NONE;
        }
        int[] bits = null;
        if (!sampling.allowedTokenIds().isEmpty()) {
            int largest = sampling.allowedTokenIds().stream().mapToInt(Integer::intValue).max().orElseThrow();
            bits = new int[largest / 32 + 1];
            for (int id : sampling.allowedTokenIds()) {
                bits[id / 32] |= 1 << (id % 32);
            }
        }
        List<int[]> words = sampling.badWords().stream()
                .map(word -> word.stream().mapToInt(Integer::intValue).toArray()).toList();
        return new TokenRestrictions(bits, words);
    }

    boolean isEmpty() {
        return allowedBits == null && badWords.isEmpty();
    }

    /** True when what is forbidden depends on the tokens generated: a bad word of more than one token. */
    boolean dependsOnHistory() {
        return badWords.stream().anyMatch(word -> word.length > 1);
    }

    /** The allowed tokens ({@link TokenBits}), or null when every token is allowed. */
    int[] allowedBits() {
        return allowedBits;
    }

    /** The distinct ids bad words forbid after {@code generated[0, count)}, in increasing order. */
    int[] banned(int[] generated, int count) {
        TreeSet<Integer> banned = new TreeSet<>();
        for (int[] word : badWords) {
            int before = word.length - 1;
            if (before <= count && Arrays.equals(word, 0, before, generated, count - before, count)) {
                banned.add(word[before]);
            }
        }
        return banned.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * The logits with every token bad words forbid after {@code generated[0, count)} at -infinity: a
     * copy, or {@code logits} itself when none is forbidden.
     */
    float[] ban(float[] logits, int[] generated, int count) {
        int[] banned = banned(generated, count);
        if (banned.length == 0) {
            return logits;
        }
        float[] restricted = logits.clone();
        for (int id : banned) {
            if (id < restricted.length) {
                restricted[id] = Float.NEGATIVE_INFINITY;
            }
        }
        return restricted;
    }
}
