package dev.coil.engine.runner;

import dev.coil.engine.tokenizer.Tokenizer;

/**
 * Where one request's output stands against its {@link ThinkingBudget}: outside a reasoning block,
 * inside one counting tokens, or forcing the end tag's tokens one by one. The tags are found in the
 * output's text, a tag split across tokens too.
 *
 * <p>Outside: until a start tag appears (or from the first token, when the prompt opens the block).
 * Inside: each token after the start tag counts; the end tag appearing ends the block; the count
 * reaching the budget starts forcing, once no character is left half spelled (llama.cpp's reasoning
 * budget waits so too), at the latest {@link #MOST_WAITED} tokens later (a character has at most four
 * bytes; a model that never finishes one is not waited for). Forcing: the next token may only be the
 * end tag's next token. A block that ends, forced or not, leaves the output outside again: a later
 * start tag opens a block with the whole budget again, as llama.cpp's and vLLM's budgets count; except
 * where a grammar holds what follows the block (a {@code response_format} after the reasoning), whose
 * text is the answer, tags and all: there nothing is held after the first block ({@code DONE}).
 */
final class ThinkingBudgetState {

    private enum Phase { OUTSIDE, INSIDE, FORCING, DONE }

    /** Most tokens past the budget waited for a half-spelled character to be finished. */
    static final int MOST_WAITED = 3;

    private final ThinkingBudget budget;
    /** The end tag's tokens, forced in order when the budget runs out. */
    private final int[] endTokens;
    /** Whether a start tag after a block ended opens another (no grammar holds the answer after it). */
    private final boolean reopens;
    /** The output's last characters, enough to find a tag that began in an earlier token's text. */
    private final StringBuilder recent = new StringBuilder();
    private Phase phase;
    private int counted;
    private int forced;

    private ThinkingBudgetState(ThinkingBudget budget, int[] endTokens, boolean reopens) {
        this.budget = budget;
        this.endTokens = endTokens;
        this.reopens = reopens;
        this.phase = budget.startsInside() ? Phase.INSIDE : Phase.OUTSIDE;
        forceWhenSpent(false);
    }

    /**
     * The state of a request with {@code budget}, its end tag spelled by {@code tokenizer}; null for no
     * budget. {@code grammarAfter}: a grammar holds the output after the block, so no block opens again.
     */
    static ThinkingBudgetState of(ThinkingBudget budget, Tokenizer tokenizer, boolean grammarAfter) {
        if (budget == null) {
            return null;
        }
        if (tokenizer == null) {
            throw new IllegalArgumentException("thinking_token_budget: forcing the reasoning's end needs the model's "
                    + "tokenizer.json");
        }
        int[] endTokens = tokenizer.encode(budget.endTag(), false);
        if (endTokens.length == 0) {
            throw new IllegalArgumentException("thinking_token_budget: the reasoning's end tag " + budget.endTag()
                    + " has no tokens");
        }
        return new ThinkingBudgetState(budget, endTokens, !grammarAfter);
    }

    /**
     * The tokens that may come next ({@link TokenBits}): while forcing, the end tag's next token alone;
     * otherwise null, every token.
     */
    int[] allowedBits() {
        if (!forcing()) {
            return null;
        }
        int token = endTokens[forced];
        int[] bits = new int[token / 32 + 1];
        bits[token / 32] = 1 << (token % 32);
        return bits;
    }

    /**
     * After a token: {@code text} is the text it completed (empty inside a character), and
     * {@code midCharacter} whether it left a character half spelled.
     */
    void accept(String text, boolean midCharacter) {
        if (phase == Phase.FORCING) {
            forced++;
            if (forced == endTokens.length) {
                phase = reopens ? Phase.OUTSIDE : Phase.DONE;
                recent.setLength(0);
            }
            return;
        }
        if (phase == Phase.DONE) {
            return;
        }
        if (phase == Phase.INSIDE) {
            counted++;
        }
        recent.append(text);
        // One token's text may close a block and open the next ("</think>\n<think>"): each tag in turn.
        for (String tag = nextTag(); phase != Phase.DONE && recent.indexOf(tag) >= 0; tag = nextTag()) {
            recent.delete(0, recent.indexOf(tag) + tag.length());
            if (phase == Phase.OUTSIDE) {
                phase = Phase.INSIDE;
                counted = 0;
                forced = 0;
            } else {
                phase = reopens ? Phase.OUTSIDE : Phase.DONE;
            }
        }
        forceWhenSpent(midCharacter);
        int keep = Math.max(budget.startTag().length(), budget.endTag().length()) - 1;
        if (recent.length() > keep) {
            recent.delete(0, recent.length() - keep);
        }
    }

    /** The tag that would change the phase: the start tag outside a block, the end tag inside one. */
    private String nextTag() {
        return phase == Phase.OUTSIDE ? budget.startTag() : budget.endTag();
    }

    /** Whether the next token is forced: the end tag's next one. */
    boolean forcing() {
        return phase == Phase.FORCING;
    }

    /** Tokens counted inside the current (or last) block so far. */
    int counted() {
        return counted;
    }

    private void forceWhenSpent(boolean midCharacter) {
        boolean spent = counted >= budget.tokens();
        if (phase == Phase.INSIDE && spent && (!midCharacter || counted >= budget.tokens() + MOST_WAITED)) {
            phase = Phase.FORCING;
        }
    }
}
