package dev.coil.engine.runner;

import java.util.Set;

/**
 * One request's output held to its {@link OutputGrammar}: before each token is drawn, every token
 * whose text the grammar refuses at this point gets -infinity; the end-of-sequence tokens stay only
 * where the output may end. Which tokens a state allows comes from the engine's {@link TokenMasks}.
 */
final class GrammarConstraint {

    private final OutputGrammar grammar;
    private final TokenMasks masks;
    private GrammarState state;

    GrammarConstraint(OutputGrammar grammar, TokenMasks masks) {
        this.grammar = grammar;
        this.masks = masks;
        this.state = grammar.start();
    }

    /**
     * A copy of {@code logits} with -infinity for every token the grammar refuses next.
     *
     * @param endIds the request's end-of-sequence ids (none with ignore_eos): allowed where the output may end
     * @throws IllegalStateException when no token continues the output (a schema the vocabulary cannot spell)
     */
    float[] mask(float[] logits, Set<Integer> endIds) {
        boolean[] allowed = masks.allowed(grammar, state).clone();
        if (state.mayEnd()) {
            for (int id : endIds) {
                if (id < allowed.length) {
                    allowed[id] = true;
                }
            }
        }
        float[] masked = logits.clone();
        boolean any = false;
        for (int id = 0; id < masked.length; id++) {
            if (id >= allowed.length || !allowed[id]) {
                masked[id] = Float.NEGATIVE_INFINITY;
            } else {
                any = true;
            }
        }
        if (!any) {
            throw new IllegalStateException("no token of the vocabulary continues the output within its grammar");
        }
        return masked;
    }

    /** Per token id, whether its text continues the output from here, walked anew (the end-of-sequence ids not included). */
    boolean[] allowedTokens() {
        return masks.walk(state);
    }

    /** The same as {@link #allowedTokens}, token by token: the reference the walk is checked against. */
    boolean[] allowedTokensOneByOne() {
        return masks.oneByOne(state);
    }

    /** Moves past a token drawn from {@link #mask}'s logits (not an end-of-sequence id). */
    void accept(int token) {
        String text = masks.vocabulary().text(token);
        GrammarState next = text == null ? null : state.feedAll(text);
        if (next == null) {
            throw new IllegalStateException("token " + token + " does not continue the output within its grammar");
        }
        state = next;
    }

    /** Whether the output is whole and nothing may follow it. */
    boolean done() {
        return state.done();
    }
}
