package dev.coil.engine.runner;

/**
 * The characters of a string being spelled, kept so that a container can compare the whole string
 * with those written before it (an array of distinct strings): one character a link, so that a
 * grammar state fed a character (once per vocabulary path, as the token masks walk) copies nothing.
 * Chains are equal when they hold the same characters; the hash is kept in each link.
 */
final class TextChain {

    /** No characters yet. */
    static final TextChain EMPTY = new TextChain(null, '\0', 0, 1);

    private final TextChain previous;
    private final char last;
    private final int length;
    private final int hash;

    private TextChain(TextChain previous, char last, int length, int hash) {
        this.previous = previous;
        this.last = last;
        this.length = length;
        this.hash = hash;
    }

    /** This text and then {@code c}. */
    TextChain append(char c) {
        return new TextChain(this, c, length + 1, 31 * hash + c);
    }

    @Override
    public String toString() {
        char[] characters = new char[length];
        TextChain at = this;
        for (int i = length - 1; i >= 0; i--) {
            characters[i] = at.last;
            at = at.previous;
        }
        return new String(characters);
    }

    @Override
    public boolean equals(Object other) {
        if (this == other) {
            return true;
        }
        if (!(other instanceof TextChain chain) || chain.length != length || chain.hash != hash) {
            return false;
        }
        TextChain mine = this;
        TextChain theirs = chain;
        while (mine != theirs && mine.length > 0) {
            if (mine.last != theirs.last) {
                return false;
            }
            mine = mine.previous;
            theirs = theirs.previous;
        }
        return true;
    }

    @Override
    public int hashCode() {
        return hash;
    }
}
