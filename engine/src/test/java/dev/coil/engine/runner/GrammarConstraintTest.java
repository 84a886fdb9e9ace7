package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The mask over the bundled model's real vocabulary: the walk through the vocabulary's tree allows
 * exactly the tokens that fed one by one continue the output, and the end-of-sequence ids only where
 * the output may end.
 */
class GrammarConstraintTest {

    private static Tokenizer tokenizer;
    private static VocabularyTrie vocabulary;

    @BeforeAll
    static void loadVocabulary() throws Exception {
        tokenizer = Tokenizer.loadFolder(Path.of("..", "models", "coil-demo"));
        vocabulary = VocabularyTrie.of(tokenizer, tokenizer.vocabSize());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    /** Along each text, at every character: the walk's allowed tokens equal the one-by-one reference. */
    @Test
    void theWalkAllowsExactlyTheTokensThatContinueTheOutput() {
        List<Case> cases = List.of(
                new Case(OutputGrammar.jsonObject(), "{\"key\": [1.5, \"é \\\" x\", {\"a\": null}], \"b\":\n  true}"),
                new Case(OutputGrammar.jsonSchema(JsonSchemaGrammarTest.PERSON),
                        "{\"name\": \"Ann\", \"age\": -31, \"email\": null, \"tags\": [\"a\"], \"role\": \"guest\"}"),
                // Up to a string's most characters: plain tokens are allowed by their length there.
                new Case(OutputGrammar.jsonSchema(JsonSchemaGrammarTest.PERSON),
                        "{\"name\": \"Annabel L\\u00e9\\\"\", \"age\": 1, \"tags\": [\"abcde\"], \"role\": \"user\"}"),
                new Case(OutputGrammar.jsonSchema(JsonSchemaGrammarTest.TREE),
                        "{\"value\": 1e3, \"children\": [{\"value\": 0}]}"),
                new Case(OutputGrammar.choice(List.of("yes", "no", "no way")), "no way"),
                new Case(OutputGrammar.regex("[A-Z][a-z]{1,6}( [a-z]{1,6}){0,3}\\."), "The same as theium."),
                // Distinct strings: the walk's shortcut through a string keeps its characters too.
                new Case(OutputGrammar.jsonSchema(JsonSchemaGrammarTest.DISTINCT_STRINGS),
                        "{\"tags\": [\"ab\", \"a\", \"abc\", \"q\\\"\"], \"codes\": [\"b\", \"a\"]}"),
                new Case(OutputGrammar.jsonSchema(JsonSchemaGrammarTest.PATTERNS), "{\"code\": \"ABC-123\", "
                        + "\"phone\": \"(555) 123-4567\", \"quoted\": \"a\\n\", \"short\": \"abc\"}"),
                // Free text first: anything up to the end tag (a start of it inside), then the value.
                new Case(OutputGrammar.jsonObject().after("</think>"), "9.8 > 9.11, not </thin k. </think>\n\n{\"a\": 1}"),
                new Case(OutputGrammar.grammar(ContextFreeGrammarTestGrammars.ARITHMETIC), "(12 + 3)*(4-(5))"),
                // A structural tag: free text, a trigger's start inside it, then a call holding JSON.
                new Case(OutputGrammar.structuralTag(StructuralTagTest.TRIGGERED),
                        "Sure, <func is not it. <function=weather>{\"city\": \"Oslo\"}</function> ok"),
                new Case(OutputGrammar.structuralTag(StructuralTagTest.THINK_THEN_CALL),
                        "<think>why </thin</think><call>[\"a\", \"ab\"]</c>"));
        int checked = 0;
        for (Case example : cases) {
            for (int i = 0; i <= example.text().length(); i++) {
                GrammarConstraint at = constraintAt(example.grammar(), example.text().substring(0, i));
                boolean[] walked = at.allowedTokens();
                boolean[] reference = at.allowedTokensOneByOne();
                assertThat(walked).as("%s after %d characters", example.grammar(), i).isEqualTo(reference);
                if (at.done()) {
                    assertThat(count(walked)).as("%s when done: tokens allowed", example.grammar()).isZero();
                } else {
                    assertThat(count(walked)).as("%s after %d characters: tokens allowed", example.grammar(), i)
                            .isPositive().isLessThan(walked.length);
                }
                checked++;
            }
        }
        assertThat(checked).isGreaterThan(150);
    }

    @Test
    void endOfSequenceOnlyWhereTheOutputMayEnd() {
        Set<Integer> ends = Set.of(0);
        float[] logits = new float[tokenizer.vocabSize()];
        OutputGrammar number = OutputGrammar.jsonSchema("{\"type\": \"integer\"}");
        assertThat(constraintAt(number, "").mask(logits, ends)[0]).isEqualTo(Float.NEGATIVE_INFINITY);
        assertThat(constraintAt(number, "-").mask(logits, ends)[0]).isEqualTo(Float.NEGATIVE_INFINITY);
        assertThat(constraintAt(number, "-12").mask(logits, ends)[0]).isEqualTo(0f);
        assertThat(constraintAt(number, "-12").mask(logits, Set.of())[0])
                .as("ignore_eos: no end ids").isEqualTo(Float.NEGATIVE_INFINITY);
        float[] masked = constraintAt(OutputGrammar.jsonObject(), "{\"a\": 1").mask(logits, ends);
        assertThat(masked[0]).isEqualTo(Float.NEGATIVE_INFINITY);
        int closing = tokenizer.encode("}", false)[0];
        assertThat(masked[closing]).isEqualTo(0f);
    }

    /**
     * Characters the vocabulary holds only in pieces (日, 語, 漢 and 😀 are no token of it; every byte
     * is): at each token of each choice's spelling, the allowed tokens are exactly those whose bytes,
     * after the ones taken, still begin a choice's UTF-8 (the end only once one is whole), and every
     * choice is taken to its end. A character a token holds whole (本) is spelled by it or by its bytes.
     */
    @Test
    void piecesSpellCharactersNoTokenHolds() {
        List<String> choices = List.of("日語", "😀漢");
        for (String choice : choices) {
            for (int token : tokenizer.encode(choice, false)) {
                assertThat(vocabulary.pieces().bytesOf(token)).as("%s: token %d", choice, token).isNotNull();
            }
        }
        OutputGrammar grammar = OutputGrammar.choice(choices);
        int end = tokenizer.eosTokenId().orElseThrow();
        for (String choice : choices) {
            GrammarConstraint constraint = new GrammarConstraint(grammar, new TokenMasks(vocabulary));
            java.io.ByteArrayOutputStream taken = new java.io.ByteArrayOutputStream();
            for (int token : tokenizer.encode(choice, false)) {
                assertAllowsWhatBeginsAChoice(constraint, taken.toByteArray(), choices, end);
                assertThat(constraint.done()).isFalse();
                constraint.accept(token);
                taken.writeBytes(tokenizer.tokenBytes(token));
            }
            assertThat(constraint.done()).as(choice).isTrue();
        }
        // 本 is a token: it and the pieces of its bytes both spell it, beside those of 😀.
        int[] book = tokenizer.encode("本", false);
        assertThat(book).hasSize(1);
        List<String> mixed = List.of("本", "😀");
        GrammarConstraint whole = new GrammarConstraint(OutputGrammar.choice(mixed), new TokenMasks(vocabulary));
        assertAllowsWhatBeginsAChoice(whole, new byte[0], mixed, end);
        whole.accept(book[0]);
        assertThat(whole.done()).isTrue();
        GrammarConstraint inPieces = new GrammarConstraint(OutputGrammar.choice(mixed), new TokenMasks(vocabulary));
        byte[] bookBytes = "本".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        for (int i = 0; i < bookBytes.length; i++) {
            int piece = singleByteToken(bookBytes[i]);
            assertAllowsWhatBeginsAChoice(inPieces, java.util.Arrays.copyOf(bookBytes, i), mixed, end);
            inPieces.accept(piece);
        }
        assertThat(inPieces.done()).isTrue();
    }

    /**
     * Inside a JSON string of exactly two characters, characters spelled in pieces count as one each,
     * and a piece goes only where its bytes go on with UTF-8: after the lead byte of 日, every
     * continuation byte and no other byte; after 日 the string may not close; after 日 and 本, only the
     * closing quote comes.
     */
    @Test
    void aStringCountsCharactersSpelledInPiecesAsCharacters() {
        GrammarConstraint constraint = new GrammarConstraint(OutputGrammar.jsonSchema(
                "{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 2}"), new TokenMasks(vocabulary));
        int quote = tokenizer.encode("\"", false)[0];
        constraint.accept(quote);
        byte[] day = "日".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        constraint.accept(singleByteToken(day[0]));
        int[] afterLead = constraint.allowedBits(Set.of());
        for (int b = 0; b < 256; b++) {
            assertThat(TokenBits.allows(afterLead, singleByteToken((byte) b))).as("byte %02x after E6", b)
                    .isEqualTo(b >= 0x80 && b <= 0xBF);
        }
        constraint.accept(singleByteToken(day[1]));
        constraint.accept(singleByteToken(day[2]));
        assertThat(TokenBits.allows(constraint.allowedBits(Set.of()), quote)).as("closing after one character").isFalse();
        for (byte b : "本".getBytes(java.nio.charset.StandardCharsets.UTF_8)) {
            constraint.accept(singleByteToken(b));
        }
        int[] full = constraint.allowedBits(Set.of());
        for (int id = 0; id < vocabulary.size(); id++) {
            String text = vocabulary.text(id);
            assertThat(TokenBits.allows(full, id)).as("token %d after two characters", id)
                    .isEqualTo(text != null && text.equals("\""));
        }
        constraint.accept(quote);
        assertThat(constraint.done()).isTrue();
    }

    /** A kept set equals the whole tokens of a fresh walk and the pieces tried afresh at {@code state}. */
    private static void assertKeptIsAFreshWalk(int[] kept, boolean[] walked, GrammarState state, int characters) {
        int[] pieces = vocabulary.pieces().allowedBits(state, CharacterPieces.NONE_PENDING, vocabulary.size());
        for (int id = 0; id < walked.length; id++) {
            assertThat(TokenBits.allows(kept, id)).as("token %d after %d characters", id, characters)
                    .isEqualTo(walked[id] || TokenBits.allows(pieces, id));
        }
    }

    /** The token of the one byte {@code value}. */
    private static int singleByteToken(byte value) {
        for (int id = 0; id < vocabulary.size(); id++) {
            byte[] bytes = tokenizer.isSpecial(id) ? null : tokenizer.tokenBytes(id);
            if (bytes != null && bytes.length == 1 && bytes[0] == value) {
                return id;
            }
        }
        throw new AssertionError("no token of the byte " + value);
    }

    private static void assertAllowsWhatBeginsAChoice(GrammarConstraint constraint, byte[] taken, List<String> choices,
            int end) {
        int[] bits = constraint.allowedBits(Set.of(end));
        for (int id = 0; id < vocabulary.size(); id++) {
            byte[] bytes = tokenizer.isSpecial(id) ? null : tokenizer.tokenBytes(id);
            boolean expected = false;
            if (bytes != null) {
                byte[] after = java.util.Arrays.copyOf(taken, taken.length + bytes.length);
                System.arraycopy(bytes, 0, after, taken.length, bytes.length);
                for (String choice : choices) {
                    byte[] whole = choice.getBytes(java.nio.charset.StandardCharsets.UTF_8);
                    expected |= bytes.length > 0 && after.length <= whole.length
                            && java.util.Arrays.equals(java.util.Arrays.copyOf(whole, after.length), after);
                }
            }
            assertThat(TokenBits.allows(bits, id)).as("token %d after %d bytes", id, taken.length).isEqualTo(expected);
        }
    }

    @Test
    void aTokenThatDoesNotContinueTheOutputIsRefused() {
        GrammarConstraint constraint = constraintAt(OutputGrammar.jsonObject(), "{");
        int letter = tokenizer.encode("x", false)[0];
        assertThatThrownBy(() -> constraint.accept(letter)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("does not continue the output");
    }

    /**
     * A structural tag's free text with a most characters (any_text's max_chars), in a tag: its states
     * far from the bound share one kept set, and at every character up to the bound and the end tag,
     * the kept set equals a fresh walk and the one-by-one reference; past the bound only the end is taken.
     */
    @Test
    void keptSetsOfBoundedFreeTextEqualFreshWalks() {
        OutputGrammar grammar = OutputGrammar.structuralTag("""
                {"type": "structural_tag", "format": {"type": "tag", "begin": "<t>", "end": "</t>",
                 "content": {"type": "any_text", "max_chars": 90}}}""");
        TokenMasks masks = new TokenMasks(vocabulary);
        String text = "<t>" + "lorem </ ipsum dolor sit amet, ".repeat(3).substring(0, 90) + "</t>";
        GrammarState state = grammar.start();
        for (int i = 0; i < text.length(); i++) {
            int[] kept = masks.allowedBits(grammar, state);
            boolean[] walked = masks.walk(state);
            assertThat(walked).as("after %d characters", i).isEqualTo(masks.oneByOne(state));
            assertKeptIsAFreshWalk(kept, walked, state, i);
            state = state.feed(text.charAt(i));
            assertThat(state).as("character %d", i).isNotNull();
        }
        assertThat(state.done()).isTrue();
        GrammarState full = grammar.start().feedAll(text.substring(0, 93));
        assertThat(full.feed('x')).as("a 91st character").isNull();
        assertThat(full.feedAll("</t>").done()).isTrue();
    }

    /**
     * A long bounded string: its states far from the bound share one kept set, and at every character
     * the kept set (the engine's, shared across the walk) equals a fresh walk, up to the last character.
     */
    @Test
    void keptSetsOfALongBoundedStringEqualFreshWalks() {
        OutputGrammar grammar = OutputGrammar.jsonSchema(
                "{\"type\": \"object\", \"properties\": {\"t\": {\"type\": \"string\", \"minLength\": 3, "
                        + "\"maxLength\": 120}}, \"required\": [\"t\"]}");
        TokenMasks masks = new TokenMasks(vocabulary);
        String text = "{\"t\": \"" + "lorem ipsum dolor sit amet, ".repeat(5).substring(0, 120) + "\"}";
        GrammarState state = grammar.start();
        for (int i = 0; i < text.length(); i++) {
            int[] kept = masks.allowedBits(grammar, state);
            assertKeptIsAFreshWalk(kept, masks.walk(state), state, i);
            state = state.feed(text.charAt(i));
            assertThat(state).as("character %d", i).isNotNull();
        }
    }

    /**
     * A GBNF grammar's walks reuse where its states led in earlier walks: along a text, twice over, one
     * engine's walks equal walks of a fresh vocabulary walker and the one-by-one reference.
     */
    @Test
    void aGrammarsKeptTransitionsWalkAsFreshOnes() {
        OutputGrammar grammar = OutputGrammar.grammar(ContextFreeGrammarTestGrammars.ARITHMETIC);
        TokenMasks masks = new TokenMasks(vocabulary);
        String text = "(12 + 3)*(4-(5)) + 678*(9 +10)";
        for (int round = 0; round < 2; round++) {
            GrammarState state = grammar.start();
            for (int i = 0; i < text.length(); i++) {
                boolean[] walked = masks.walk(state);
                assertThat(walked).as("round %d after %d characters", round, i)
                        .isEqualTo(new TokenMasks(vocabulary).walk(state)).isEqualTo(masks.oneByOne(state));
                state = state.feed(text.charAt(i));
                assertThat(state).as("character %d", i).isNotNull();
            }
        }
    }

    /**
     * Walks on several threads at once through one TokenMasks (as the step thread's helpers walk several
     * requests' grammars, sharing its kept sets, a grammar's kept transitions and an automaton's moves)
     * give each state the allowed tokens one thread's fresh walk gives it.
     */
    @Test
    void walksOnSeveralThreadsAtOnceEqualOneThreadsWalks() throws Exception {
        List<Case> cases = List.of(
                new Case(OutputGrammar.jsonSchema(JsonSchemaGrammarTest.PERSON),
                        "{\"name\": \"Ann\", \"age\": -31, \"email\": null, \"tags\": [\"a\"], \"role\": \"guest\"}"),
                new Case(OutputGrammar.regex("[A-Z][a-z]{1,6}( [a-z]{1,6}){0,3}\\.(?:x){0}"), "The same as theium."),
                new Case(OutputGrammar.jsonSchema(JsonSchemaGrammarTest.PATTERNS), "{\"code\": \"ABC-123\", "
                        + "\"phone\": \"(555) 123-4567\", \"quoted\": \"a\\n\", \"short\": \"abc\"}"),
                new Case(OutputGrammar.grammar(ContextFreeGrammarTestGrammars.ARITHMETIC + "# threads"),
                        "(12 + 3)*(4-(5)) + 678*(9 +10)"));
        List<OutputGrammar> grammars = new java.util.ArrayList<>();
        List<GrammarState> states = new java.util.ArrayList<>();
        List<int[]> expected = new java.util.ArrayList<>();
        for (Case example : cases) {
            GrammarState state = example.grammar().start();
            for (int i = 0; i < example.text().length(); i++) {
                grammars.add(example.grammar());
                states.add(state);
                expected.add(new TokenMasks(vocabulary).allowedBits(example.grammar(), state));
                state = state.feed(example.text().charAt(i));
                assertThat(state).as("%s, character %d", example.grammar(), i).isNotNull();
            }
        }
        TokenMasks shared = new TokenMasks(vocabulary);
        int threads = 8;
        List<java.util.concurrent.Callable<int[][]>> walkers = new java.util.ArrayList<>();
        for (int t = 0; t < threads; t++) {
            java.util.Random order = new java.util.Random(t);
            walkers.add(() -> {
                int[][] found = new int[states.size()][];
                List<Integer> indices = new java.util.ArrayList<>(java.util.stream.IntStream.range(0, states.size())
                        .boxed().toList());
                java.util.Collections.shuffle(indices, order);
                for (int index : indices) {
                    found[index] = shared.allowedBits(grammars.get(index), states.get(index));
                }
                return found;
            });
        }
        try (java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(threads)) {
            for (java.util.concurrent.Future<int[][]> walked : pool.invokeAll(walkers)) {
                int[][] found = walked.get();
                for (int index = 0; index < states.size(); index++) {
                    assertThat(found[index]).as("%s, state %d", grammars.get(index), index)
                            .isEqualTo(expected.get(index));
                }
            }
        }
        assertThat(states).hasSizeGreaterThan(150);
    }

    /** The constraint after {@code text}, fed token by token as the tokenizer splits it. */
    private static GrammarConstraint constraintAt(OutputGrammar grammar, String text) {
        GrammarConstraint constraint = new GrammarConstraint(grammar, new TokenMasks(vocabulary));
        if (!text.isEmpty()) {
            for (int token : tokenizer.encode(text, false)) {
                constraint.accept(token);
            }
        }
        return constraint;
    }

    private static int count(boolean[] flags) {
        int count = 0;
        for (boolean flag : flags) {
            count += flag ? 1 : 0;
        }
        return count;
    }

    private record Case(OutputGrammar grammar, String text) {
    }
}
