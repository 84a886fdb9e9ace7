package dev.coil.engine.runner;

import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;
import java.util.function.IntConsumer;

/**
 * The tokens one sequence has seen, in the two forms the penalties need: every token of the prompt and the
 * output (the repetition penalty looks at both) and how often each token was generated (presence and
 * frequency penalties look at the output only, as vLLM does). Kept incrementally so that a decode step costs
 * time proportional to the distinct tokens, not to the sequence length.
 *
 * <p>Not thread-safe; one instance per sequence, owned by whoever runs its decode loop.
 */
public final class TokenHistory {

    private final BitSet seen = new BitSet();
    private final Map<Integer, Integer> outputCounts = new HashMap<>();
    private int generated;

    /** @param promptTokens the prompt's ids (not retained) */
    public TokenHistory(int[] promptTokens) {
        for (int token : promptTokens) {
            seen.set(checkId(token));
        }
    }

    /** Records one generated token. */
    public void append(int token) {
        seen.set(checkId(token));
        outputCounts.merge(token, 1, Integer::sum);
        generated++;
    }

    /** How many tokens were generated so far. */
    public int generatedCount() {
        return generated;
    }

    /** How many times {@code token} was generated. */
    public int outputCount(int token) {
        return outputCounts.getOrDefault(token, 0);
    }

    /** Calls {@code action} once per distinct token of the prompt and the output, in increasing id order. */
    void forEachSeen(IntConsumer action) {
        for (int id = seen.nextSetBit(0); id >= 0; id = seen.nextSetBit(id + 1)) {
            action.accept(id);
        }
    }

    /** Calls {@code action} once per distinct generated token with its count. */
    void forEachOutputCount(OutputCountConsumer action) {
        outputCounts.forEach(action::accept);
    }

    @FunctionalInterface
    interface OutputCountConsumer {
        void accept(int token, int count);
    }

    private static int checkId(int token) {
        if (token < 0) {
            throw new IllegalArgumentException("token ids are non-negative, got " + token);
        }
        return token;
    }
}
