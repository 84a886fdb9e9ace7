package dev.coil.engine.runner;

/**
 * Sets of token ids as a draw carries them ({@link dev.coil.engine.model.Batch.Draw#allowedBits}): bit
 * id % 32 of word id / 32 set where token id is allowed; an id one past the words is not.
 */
final class TokenBits {

    private TokenBits() {
    }

    static boolean allows(int[] bits, int id) {
        return id / 32 < bits.length && (bits[id / 32] >>> (id % 32) & 1) != 0;
    }

    /** A copy of {@code logits} with -infinity for every token {@code bits} refuses (none where bits is null). */
    static float[] masked(float[] logits, int[] bits) {
        float[] masked = logits.clone();
        for (int id = 0; bits != null && id < masked.length; id++) {
            if (!allows(bits, id)) {
                masked[id] = Float.NEGATIVE_INFINITY;
            }
        }
        return masked;
    }

    /** Tokens both sets allow (a null set allows all); null when both are null. */
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
}
