package dev.coil.engine.runner;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One request's output held to its {@link OutputGrammar}: before each token is drawn, every token
 * whose text the grammar refuses at this point gets -infinity; the end-of-sequence tokens stay only
 * where the output may end. The tokens are tried through the {@link VocabularyTrie}, so that a prefix
 * many tokens share is fed once, and a refused one rules out every token under it. The tokens a state
 * allows are kept for the last few states, which repeat inside a long string.
 */
final class GrammarConstraint {

    /** States whose allowed tokens are kept. */
    private static final int KEPT_STATES = 8;

    private final VocabularyTrie vocabulary;
    private final Map<GrammarState, boolean[]> allowedByState = new LinkedHashMap<>(KEPT_STATES, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<GrammarState, boolean[]> eldest) {
            return size() > KEPT_STATES;
        }
    };
    private GrammarState state;

    GrammarConstraint(OutputGrammar grammar, VocabularyTrie vocabulary) {
        this.vocabulary = vocabulary;
        this.state = grammar.start();
    }

    /**
     * A copy of {@code logits} with -infinity for every token the grammar refuses next.
     *
     * @param endIds the request's end-of-sequence ids (none with ignore_eos): allowed where the output may end
     * @throws IllegalStateException when no token continues the output (a schema the vocabulary cannot spell)
     */
    float[] mask(float[] logits, Set<Integer> endIds) {
        boolean[] allowed = allowedByState.computeIfAbsent(state, key -> allowedTokens()).clone();
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

    /** Per token id, whether its text continues the output from here (the end-of-sequence ids not included). */
    boolean[] allowedTokens() {
        boolean[] allowed = new boolean[vocabulary.size()];
        walk(vocabulary.root(), state, allowed, new ArrayList<>());
        return allowed;
    }

    private static void walk(VocabularyTrie.Node node, GrammarState state, boolean[] allowed,
            List<GrammarFrame> scratch) {
        for (int i = 0; i < node.characters.length; i++) {
            GrammarState next = state.feed(node.characters[i], scratch);
            if (next == null) {
                continue;
            }
            VocabularyTrie.Node child = node.children[i];
            for (int token : child.tokens) {
                allowed[token] = true;
            }
            if (child.children.length > 0) {
                walk(child, next, allowed, scratch);
            }
        }
    }

    /** The same as {@link #allowedTokens}, token by token: the reference the walk is checked against. */
    boolean[] allowedTokensOneByOne() {
        boolean[] allowed = new boolean[vocabulary.size()];
        for (int id = 0; id < allowed.length; id++) {
            String text = vocabulary.text(id);
            allowed[id] = text != null && state.feedAll(text) != null;
        }
        return allowed;
    }

    /** Moves past a token drawn from {@link #mask}'s logits (not an end-of-sequence id). */
    void accept(int token) {
        String text = vocabulary.text(token);
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
