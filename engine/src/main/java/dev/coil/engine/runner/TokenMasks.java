package dev.coil.engine.runner;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Which tokens of one vocabulary each grammar state allows, kept across requests: one engine's
 * requests share it. The tokens are tried through the {@link VocabularyTrie}, so that a prefix many
 * tokens share is fed once, and a refused one rules out every token under it. A state's allowed set
 * is kept once walked, up to {@link #MAX_BYTES} in all (the least recently used go first): the
 * states inside a long string repeat, and requests held to the same schema (an application sends
 * the same one every time, and {@link OutputGrammar} compiles it once) pass through the same states.
 */
final class TokenMasks {

    /** Bytes of allowed sets kept (one bit a token of the vocabulary). */
    static final long MAX_BYTES = 64L << 20;

    /** A state of a grammar (states of different grammars, or compilations, are never equal). */
    private record Key(OutputGrammar grammar, GrammarState state) {
    }

    /** A state of a grammar with the bytes of a character begun there (none: between characters). */
    private record PieceKey(OutputGrammar grammar, GrammarState state, String pending) {
    }

    private final VocabularyTrie vocabulary;
    private final Cache<Key, int[]> kept = Caffeine.newBuilder().maximumWeight(MAX_BYTES)
            .weigher((Key key, int[] bits) -> 4 * bits.length + 64).build();
    /** The pieces each state allows, kept as the whole tokens' sets are (their walk tries ranges of characters). */
    private final Cache<PieceKey, int[]> keptPieces = Caffeine.newBuilder().maximumWeight(MAX_BYTES / 4)
            .weigher((PieceKey key, int[] bits) -> 4 * bits.length + 64).build();

    /** States of context-free grammars whose transitions are kept across walks. */
    static final int KEPT_TRANSITION_STATES = 50_000;
    /** Where each character leads from a context-free grammar's state (REFUSED: nowhere), kept across walks. */
    private final Cache<GrammarState, Map<Character, GrammarState>> transitions = Caffeine.newBuilder()
            .maximumSize(KEPT_TRANSITION_STATES).build();

    TokenMasks(VocabularyTrie vocabulary) {
        this.vocabulary = vocabulary;
    }

    VocabularyTrie vocabulary() {
        return vocabulary;
    }

    /**
     * The tokens whose text continues a text of {@code grammar} at {@code state}, and those holding
     * part of a character whose bytes do: bit id % 32 of word id / 32 set for token id. Shared: do not
     * change it.
     */
    int[] allowedBits(OutputGrammar grammar, GrammarState state) {
        return kept.get(key(grammar, state), key -> withPieces(bits(walk(state)), state));
    }

    /**
     * {@code bits} with the tokens holding part of a character that may come at {@code state} between
     * characters ({@link CharacterPieces}), kept with the whole tokens' set: one array a state, which
     * the parallel walks ({@link GrammarConstraint#walkAfter}) fill ahead of the step.
     */
    private int[] withPieces(int[] bits, GrammarState state) {
        int[] pieces = vocabulary.pieces().allowedBits(state, CharacterPieces.NONE_PENDING, vocabulary.size());
        for (int i = 0; i < bits.length; i++) {
            bits[i] |= pieces[i];
        }
        return bits;
    }

    /**
     * The tokens holding part of a character ({@link CharacterPieces}) that continue a text of
     * {@code grammar} at {@code state} with the bytes {@code pending} of a character begun (one to
     * three), as bits. Shared: do not change it.
     */
    int[] pieceBits(OutputGrammar grammar, GrammarState state, byte[] pending) {
        // Keyed as the whole tokens' sets are (a long plain string's states share one key): a piece
        // adds no more characters than its text alone would show.
        PieceKey key = new PieceKey(grammar, key(grammar, state).state(),
                new String(pending, java.nio.charset.StandardCharsets.ISO_8859_1));
        return keptPieces.get(key, unused -> vocabulary.pieces().allowedBits(state, pending, vocabulary.size()));
    }

    /**
     * The key of a state's allowed set. Inside a plain string with a most characters, past its least and
     * farther from its most than any token is long, every token fits, so the allowed set does not depend
     * on the count: such states share one key (a count of -1), and a long bounded string walks once.
     * So do a structural tag's free text with a most characters ({@code any_text}'s max_chars).
     */
    private Key key(OutputGrammar grammar, GrammarState state) {
        GrammarState keyed = state.withFrames(frame -> frame instanceof StructuralRules.AnyTextFrame text
                ? text.keyed(vocabulary.longestText()) : frame);
        if (keyed != state) {
            return new Key(grammar, keyed);
        }
        GrammarFrame.StringFrame string = state.insidePlainString();
        if (string != null && string.rule().maxLength != Integer.MAX_VALUE && string.length() >= string.rule().minLength
                && string.rule().maxLength - string.length() >= vocabulary.longestText()) {
            return new Key(grammar, GrammarState.of(new GrammarFrame.StringFrame(string.rule(), string.parent(),
                    StringLexer.NORMAL, -1)));
        }
        return new Key(grammar, state);
    }

    private static int[] bits(boolean[] allowed) {
        int[] bits = new int[(allowed.length + 31) / 32];
        for (int id = 0; id < allowed.length; id++) {
            if (allowed[id]) {
                bits[id / 32] |= 1 << (id % 32);
            }
        }
        return bits;
    }

    /**
     * The allowed tokens at {@code state}, walked anew (the end-of-sequence ids not included). Inside
     * a plain JSON string (not in an escape, no pattern), a plain token is allowed by its length alone,
     * so only the other tokens are walked.
     */
    boolean[] walk(GrammarState state) {
        boolean[] allowed = new boolean[vocabulary.size()];
        GrammarFrame.StringFrame string = state.insidePlainString();
        GrammarFrame only = state.onlyFrame();
        if (string != null) {
            int most = string.rule().maxLength == Integer.MAX_VALUE ? Integer.MAX_VALUE
                    : string.rule().maxLength - string.length();
            vocabulary.allowPlain(most, allowed);
            walk(vocabulary.escapedRoot(), state, allowed, new ArrayList<>());
        } else if (only instanceof GrammarFrame.RegexFrame regex && regex.parent() == GrammarFrame.Top.INSTANCE) {
            walkPattern(vocabulary.root(), regex.automaton(), regex.position(), null, null, allowed,
                    new ArrayList<>());
        } else if (only instanceof GrammarFrame.PatternStringFrame patterned
                && patterned.stage() == GrammarFrame.PatternStringFrame.NORMAL) {
            walkPattern(vocabulary.root(), patterned.pattern(), patterned.position(), patterned, patterned.text(),
                    allowed, new ArrayList<>());
        } else if (state.leadsToStatesMetBefore()) {
            Map<GrammarState, MetState> met = new HashMap<>();
            walkRemembering(vocabulary.root(), meet(state, met), allowed, met);
        } else {
            walk(vocabulary.root(), state, allowed, new ArrayList<>());
        }
        return allowed;
    }

    /** A state no character leads to. */
    private static final GrammarState REFUSED = GrammarState.of(GrammarFrame.Done.INSTANCE);

    /**
     * A state one walk has met: where each character leads, as kept across walks, and the states of
     * this walk those are.
     */
    private record MetState(GrammarState state, Map<Character, GrammarState> kept, Map<Character, MetState> next) {
    }

    private static final MetState REFUSED_MET = new MetState(REFUSED, Map.of(), Map.of());

    private MetState meet(GrammarState state, Map<GrammarState, MetState> met) {
        return met.computeIfAbsent(state, key -> new MetState(key,
                transitions.get(key, unused -> new ConcurrentHashMap<>()), new HashMap<>()));
    }

    /**
     * The walk where the text follows a context-free grammar. Many of the tree's paths lead to equal
     * states (inside a word, after any two letters), and feeding a state costs its frames' expansions,
     * so a state is fed each character once: where it leads is kept across walks (and requests), and
     * met again within a walk by its state alone.
     */
    private void walkRemembering(VocabularyTrie.Node node, MetState at, boolean[] allowed,
            Map<GrammarState, MetState> met) {
        for (int i = 0; i < node.characters.length; i++) {
            char c = node.characters[i];
            MetState next = at.next().get(c);
            if (next == null) {
                GrammarState fed = at.kept().get(c);
                if (fed == null) {
                    GrammarState computed = at.state().feed(c);
                    fed = computed == null ? REFUSED : computed;
                    at.kept().put(c, fed);
                }
                next = fed == REFUSED ? REFUSED_MET : meet(fed, met);
                at.next().put(c, next);
            }
            if (next == REFUSED_MET) {
                continue;
            }
            VocabularyTrie.Node child = node.children[i];
            allow(child, allowed);
            if (child.children.length > 0) {
                walkRemembering(child, next, allowed, met);
            }
        }
    }

    /**
     * The walk where the text stands only in a regular expression's automaton: the whole output held
     * to a regex (after it nothing follows), or a JSON string held to a pattern ({@code string}, whose
     * plain characters the automaton reads as they are; {@code text}: its characters, where its array
     * compares them with the strings before, else null). Positions are fed directly, without frames;
     * a character that leaves plain string content (a quote, a backslash) goes on through the frames.
     */
    private static void walkPattern(VocabularyTrie.Node node, RegexAutomaton automaton, RegexAutomaton.Position position,
            GrammarFrame.PatternStringFrame string, TextChain text, boolean[] allowed, List<GrammarFrame> scratch) {
        for (int i = 0; i < node.characters.length; i++) {
            char c = node.characters[i];
            VocabularyTrie.Node child = node.children[i];
            if (string != null && !StringLexer.isPlain(c)) {
                GrammarState next = GrammarState.of(new GrammarFrame.PatternStringFrame(automaton, string.parent(),
                        GrammarFrame.PatternStringFrame.NORMAL, position, text)).feed(c, scratch);
                if (next != null) {
                    allow(child, allowed);
                    if (child.children.length > 0) {
                        walk(child, next, allowed, scratch);
                    }
                }
                continue;
            }
            RegexAutomaton.Position after = automaton.feed(position, c);
            if (after != null) {
                allow(child, allowed);
                if (child.children.length > 0) {
                    walkPattern(child, automaton, after, string, text == null ? null : text.append(c), allowed,
                            scratch);
                }
            }
        }
    }

    private static void allow(VocabularyTrie.Node node, boolean[] allowed) {
        for (int token : node.tokens) {
            allowed[token] = true;
        }
    }

    private static void walk(VocabularyTrie.Node node, GrammarState state, boolean[] allowed,
            List<GrammarFrame> scratch) {
        for (int i = 0; i < node.characters.length; i++) {
            GrammarState next = state.feed(node.characters[i], scratch);
            if (next == null) {
                continue;
            }
            VocabularyTrie.Node child = node.children[i];
            allow(child, allowed);
            if (child.children.length > 0) {
                walk(child, next, allowed, scratch);
            }
        }
    }

    /** The same as {@link #walk}, token by token: the reference the walk is checked against. */
    boolean[] oneByOne(GrammarState state) {
        boolean[] allowed = new boolean[vocabulary.size()];
        for (int id = 0; id < allowed.length; id++) {
            String text = vocabulary.text(id);
            allowed[id] = text != null && state.feedAll(text) != null;
        }
        return allowed;
    }
}
