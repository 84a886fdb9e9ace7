package dev.coil.engine.runner;

import java.util.Set;

/**
 * One request's output held to its {@link OutputGrammar}: before each token is drawn, every token
 * whose text the grammar refuses at this point gets -infinity; the end-of-sequence tokens stay only
 * where the output may end. Which tokens a state allows comes from the engine's {@link TokenMasks}.
 *
 * <p>A character the vocabulary holds in no token whole (😀 or 日 on a vocabulary without them) is
 * spelled by the tokens that hold part of a character ({@link CharacterPieces}), taken by their bytes:
 * beside the whole tokens, the pieces whose bytes begin characters the grammar takes are allowed, and
 * the constraint keeps the bytes of the character begun ({@code pending}) until a piece finishes it;
 * meanwhile only pieces that go on with it are allowed, and the output may not end.
 */
final class GrammarConstraint {

    private final OutputGrammar grammar;
    private final TokenMasks masks;
    private GrammarState state;
    /** The bytes of a character begun by pieces and not yet finished; empty between characters. */
    private byte[] pending = CharacterPieces.NONE_PENDING;
    /** The state's allowed tokens with the end ids, once asked (a draw asks, then logits may come back); else null. */
    private int[] allowedHere;

    GrammarConstraint(OutputGrammar grammar, TokenMasks masks) {
        this.grammar = grammar;
        this.masks = masks;
        this.state = grammar.start();
    }

    /**
     * The tokens that may come next, as bits for a backend that draws the token itself (see
     * {@link dev.coil.engine.model.Batch.Draw#allowedBits}): bit id % 32 of word id / 32 set for token
     * id, the end-of-sequence ids included where the output may end; the tokens {@link #mask} leaves.
     * No bit is set when no token continues the output (a pattern or schema whose next character the
     * vocabulary cannot spell): {@link ActiveRequest#noTokenLeft} then says so, before any draw.
     */
    int[] allowedBits(Set<Integer> endIds) {
        if (allowedHere == null) {
            allowedHere = allowedBitsAnew(endIds);
        }
        return allowedHere;
    }

    /** True when {@link #allowedBits} at the present state is known already. */
    boolean walked() {
        return allowedHere != null;
    }

    private int[] allowedBitsAnew(Set<Integer> endIds) {
        if (pending.length > 0) {
            return masks.pieceBits(grammar, state, pending);
        }
        int[] bits = masks.allowedBits(grammar, state);
        if (state.mayEnd()) {
            bits = bits.clone();
            for (int id : endIds) {
                if (id >= 0 && id < masks.vocabulary().size()) {
                    bits[id / 32] |= 1 << (id % 32);
                }
            }
        }
        return bits;
    }

    /**
     * A copy of {@code logits} with -infinity for every token the grammar refuses next.
     *
     * @param endIds the request's end-of-sequence ids (none with ignore_eos): allowed where the output may end
     */
    float[] mask(float[] logits, Set<Integer> endIds) {
        return TokenBits.masked(logits, allowedBits(endIds));
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
        GrammarState next = text == null || pending.length > 0 ? null : state.feedAll(text);
        byte[] begun = CharacterPieces.NONE_PENDING;
        if (next == null) {
            // A piece (no text of its own): its bytes finish characters and may begin one.
            byte[] bytes = masks.vocabulary().pieces().bytesOf(token);
            CharacterPieces.Step step = bytes == null ? null : CharacterPieces.step(pending, bytes);
            next = step == null ? null : state.feedAll(step.text());
            begun = step == null ? begun : step.pending();
        }
        if (next == null) {
            throw new IllegalStateException("token " + token + " does not continue the output within its grammar");
        }
        state = next;
        pending = begun;
        allowedHere = null;
    }

    /**
     * Walks the allowed tokens where {@link #accept accepting} {@code token} would lead, into the shared
     * {@link TokenMasks}, without moving: the walk the accept's check then finds kept. Nothing for a token
     * that does not continue the output or ends it. From any thread while no other touches this constraint.
     */
    void walkAfter(int token) {
        if (pending.length > 0) {
            return; // pieces are tried at the step itself
        }
        String text = masks.vocabulary().text(token);
        GrammarState next = text == null ? null : state.feedAll(text);
        if (next != null && !next.done()) {
            masks.allowedBits(grammar, next);
        }
    }

    /** Whether the output is whole and nothing may follow it. */
    boolean done() {
        return state.done() && pending.length == 0;
    }
}
