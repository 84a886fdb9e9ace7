package dev.coil.engine.runner;

/** A walk through an {@link OutputGrammar} one character at a time, for tests; a refused character changes nothing. */
final class GrammarCursor {

    private GrammarState state;

    GrammarCursor(OutputGrammar grammar) {
        this.state = grammar.start();
    }

    private GrammarCursor(GrammarState state) {
        this.state = state;
    }

    boolean accept(char c) {
        GrammarState next = state.feed(c);
        if (next == null) {
            return false;
        }
        state = next;
        return true;
    }

    /** Feeds every character of {@code text}; false at the first one refused (the characters before it stay fed). */
    boolean acceptAll(String text) {
        for (int i = 0; i < text.length(); i++) {
            if (!accept(text.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    /** Whether the text is whole and nothing may follow. */
    boolean done() {
        return state.done();
    }

    /** Whether the text may end here. */
    boolean mayEnd() {
        return state.mayEnd();
    }

    GrammarState state() {
        return state;
    }

    GrammarCursor copy() {
        return new GrammarCursor(state);
    }
}
