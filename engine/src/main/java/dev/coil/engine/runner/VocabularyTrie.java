package dev.coil.engine.runner;

import dev.coil.engine.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The vocabulary's token texts as a tree of characters, so that a grammar walks the text tokens share
 * once: every token under a prefix the grammar refuses is refused with it. Built once per engine.
 *
 * <p>Most tokens are plain string content: no quote, no backslash, no control character. Inside a
 * JSON string such a token is allowed or not by its length alone, so the tokens are also kept split:
 * the plain ones by their count of characters, and a second tree of the others, which a grammar
 * inside a string walks instead of the whole.
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
    /** The plain tokens, fewest characters (code points) first, and each one's count. */
    private final int[] plainTokens;
    private final int[] plainCounts;
    /** The tree of the tokens that are not plain. */
    private final Node escapedRoot;
    /** The most UTF-16 units of any token's text, or characters any piece adds. */
    private final int longestText;
    /** The tokens that hold part of a character, with their bytes (none where the tokenizer cannot tell them). */
    private final CharacterPieces pieces;

    /** @param texts per token id, its text alone; null for a token no output text holds */
    VocabularyTrie(String[] texts) {
        this(texts, CharacterPieces.NONE);
    }

    /** As above, with the tokens that hold part of a character. */
    VocabularyTrie(String[] texts, CharacterPieces pieces) {
        this.pieces = pieces;
        this.texts = texts.clone();
        Building top = new Building();
        Building escaped = new Building();
        List<long[]> plain = new ArrayList<>();
        int longest = 0;
        for (int id = 0; id < texts.length; id++) {
            String text = texts[id];
            if (text == null || text.isEmpty()) {
                continue;
            }
            longest = Math.max(longest, text.length());
            top.add(text, id);
            if (isPlain(text)) {
                plain.add(new long[] {characters(text), id});
            } else {
                escaped.add(text, id);
            }
        }
        plain.sort(Comparator.comparingLong(entry -> entry[0]));
        this.plainTokens = plain.stream().mapToInt(entry -> (int) entry[1]).toArray();
        this.plainCounts = plain.stream().mapToInt(entry -> (int) entry[0]).toArray();
        this.root = top.freeze();
        this.escapedRoot = escaped.freeze();
        this.longestText = Math.max(longest, pieces.mostCharacters());
    }

    /** The most UTF-16 units of any token's text: no token adds more characters to a string. */
    int longestText() {
        return longestText;
    }

    /** Whether every character of {@code text} stands in a JSON string as it is. */
    static boolean isPlain(String text) {
        for (int i = 0; i < text.length(); i++) {
            if (!StringLexer.isPlain(text.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    /** Characters as a JSON string counts them: every unit but a low surrogate. */
    static int characters(String text) {
        int count = 0;
        for (int i = 0; i < text.length(); i++) {
            count += Character.isLowSurrogate(text.charAt(i)) ? 0 : 1;
        }
        return count;
    }

    /**
     * Each token's text as a grammar reads it: the text it adds after other text (the output goes on
     * from the prompt; {@link Tokenizer#tokenBytes}), so that a SentencePiece token "▁York" is " York"
     * here as in the output, where decoding it alone drops the space. A token that holds part of a
     * character has none: where the tokenizer tells its bytes (byte-level and byte-fallback
     * vocabularies), it is one of the {@link #pieces}, which the constraint takes by their bytes;
     * elsewhere its text is its decoding alone, U+FFFD, which only a string takes. Special tokens have none.
     */
    static VocabularyTrie of(Tokenizer tokenizer, int vocab) {
        String[] texts = new String[vocab];
        List<Integer> pieceTokens = new ArrayList<>();
        List<byte[]> pieceBytes = new ArrayList<>();
        int known = Math.min(vocab, tokenizer.vocabSize());
        for (int id = 0; id < known; id++) {
            if (tokenizer.isSpecial(id)) {
                continue;
            }
            byte[] bytes = tokenizer.tokenBytes(id);
            if (bytes != null && CharacterPieces.incomplete(bytes)) {
                // Its text would stand U+FFFD for bytes a grammar must see whole: it goes by its bytes.
                pieceTokens.add(id);
                pieceBytes.add(bytes);
            } else {
                texts[id] = tokenizer.tokenText(id);
            }
        }
        return new VocabularyTrie(texts, new CharacterPieces(pieceTokens.stream().mapToInt(Integer::intValue).toArray(),
                pieceBytes.toArray(byte[][]::new)));
    }

    /** The tokens that hold part of a character's UTF-8, with their bytes. */
    CharacterPieces pieces() {
        return pieces;
    }

    Node root() {
        return root;
    }

    /** The tree of the tokens that are not plain. */
    Node escapedRoot() {
        return escapedRoot;
    }

    /** Marks every plain token of at most {@code most} characters. */
    void allowPlain(int most, boolean[] allowed) {
        for (int i = 0; i < plainTokens.length && plainCounts[i] <= most; i++) {
            allowed[plainTokens[i]] = true;
        }
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

        void add(String text, int id) {
            Building node = this;
            for (int i = 0; i < text.length(); i++) {
                node = node.children.computeIfAbsent(text.charAt(i), c -> new Building());
            }
            node.tokens = Arrays.copyOf(node.tokens, node.tokens.length + 1);
            node.tokens[node.tokens.length - 1] = id;
        }

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
