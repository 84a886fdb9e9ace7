package dev.coil.engine.runner;

import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;

/**
 * What vLLM's allowed_token_ids and bad_words forbid a request's next token: every token outside the
 * allowed list, and the last token of each bad word whose other tokens the output has just
 * generated (a one-token word always). Both give -infinity before the logit bias and the penalties,
 * on the host ({@link #apply}) and, as an allowed-token mask and -infinity biases, in a backend's draw.
 */
final class TokenRestrictions {

    private static final TokenRestrictions NONE = new TokenRestrictions(null, List.of());

    /** Bit id % 32 of word id / 32 set where token id is allowed (one past the words is not); null: all are. */
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

    /** The allowed tokens as mask bits (see the field), or null when every token is allowed. */
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
     * The logits with every forbidden token at -infinity after {@code generated[0, count)}: a copy, or
     * {@code logits} itself when nothing is forbidden.
     */
    float[] apply(float[] logits, int[] generated, int count) {
        if (isEmpty()) {
            return logits;
        }
        float[] restricted = logits.clone();
        if (allowedBits != null) {
            for (int id = 0; id < restricted.length; id++) {
                if (!allowed(allowedBits, id)) {
                    restricted[id] = Float.NEGATIVE_INFINITY;
                }
            }
        }
        for (int id : banned(generated, count)) {
            if (id < restricted.length) {
                restricted[id] = Float.NEGATIVE_INFINITY;
            }
        }
        return restricted;
    }

    /** Tokens both masks allow (a null mask allows all); null when both are null. */
    static int[] intersect(int[] first, int[] second) {
        if (first == null || second == null) {
            return first == null ? second : first;
        }
        int[] both = new int[Math.min(first.length, second.length)];
        for (int i = 0; i < both.length; i++) {
            both[i] = first[i] & second[i];
        }
        return both;
    }

    private static boolean allowed(int[] bits, int id) {
        return id / 32 < bits.length && (bits[id / 32] >>> (id % 32) & 1) != 0;
    }
}
