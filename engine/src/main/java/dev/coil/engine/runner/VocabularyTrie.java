package dev.coil.engine.runner;

import dev.coil.engine.tokenizer.Tokenizer;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;

/**
 * The vocabulary's token texts as a tree of characters, so that a grammar walks the text tokens share
 * once: every token under a prefix the grammar refuses is refused with it. Built once per engine.
 */
final class VocabularyTrie {

    /** One prefix: the characters that continue it, sorted, their nodes, and the tokens whose text it is. */
    static final class Node {
        final char[] characters;
        final Node[] children;
        final int[] tokens;

        private Node(char[] characters, Node[] children, int[] tokens) {
            this.characters = characters;
            this.children = children;
            this.tokens = tokens;
        }
    }

    private final Node root;
    private final String[] texts;

    /** @param texts per token id, its text alone; null for a token no output text holds */
    VocabularyTrie(String[] texts) {
        this.texts = texts.clone();
        Building top = new Building();
        for (int id = 0; id < texts.length; id++) {
            String text = texts[id];
            if (text == null || text.isEmpty()) {
                continue;
            }
            Building node = top;
            for (int i = 0; i < text.length(); i++) {
                node = node.children.computeIfAbsent(text.charAt(i), c -> new Building());
            }
            node.tokens = Arrays.copyOf(node.tokens, node.tokens.length + 1);
            node.tokens[node.tokens.length - 1] = id;
        }
        this.root = top.freeze();
    }

    /**
     * Each token's text alone, as a grammar reads it: a byte-level token that holds part of a
     * character decodes to U+FFFD, which only a string takes, where the whole character belongs.
     * Special tokens have none.
     */
    static VocabularyTrie of(Tokenizer tokenizer, int vocab) {
        String[] texts = new String[vocab];
        int known = Math.min(vocab, tokenizer.vocabSize());
        for (int id = 0; id < known; id++) {
            if (!tokenizer.isSpecial(id)) {
                texts[id] = tokenizer.decode(new int[] {id}, false);
            }
        }
        return new VocabularyTrie(texts);
    }

    Node root() {
        return root;
    }

    /** Token {@code id}'s text, or null when it has none (special, empty, past the tokenizer). */
    String text(int id) {
        return id >= 0 && id < texts.length && texts[id] != null && !texts[id].isEmpty() ? texts[id] : null;
    }

    int size() {
        return texts.length;
    }

    private static final class Building {
        final Map<Character, Building> children = new TreeMap<>();
        int[] tokens = new int[0];

        Node freeze() {
            char[] characters = new char[children.size()];
            Node[] nodes = new Node[children.size()];
            int i = 0;
            for (Map.Entry<Character, Building> child : children.entrySet()) {
                characters[i] = child.getKey();
                nodes[i++] = child.getValue().freeze();
            }
            return new Node(characters, nodes, tokens);
        }
    }
}
