package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.tokenizer.SentencePieceTokenizerTest;
import dev.coil.engine.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Grammars over a SentencePiece-style vocabulary (tokenizer-sentencepiece: "▁" for a space, bytes no
 * piece holds as "&lt;0xE6&gt;"): a token is read as the text it adds after other text, " York" for
 * "▁York", which decoding it alone shows as "York"; 日, which no piece holds, is spelled by its bytes.
 */
class SentencePieceGrammarTest {

    private static Tokenizer tokenizer;
    private static VocabularyTrie vocabulary;

    @BeforeAll
    static void loadVocabulary() throws Exception {
        tokenizer = Tokenizer.loadFolder(SentencePieceTokenizerTest.folder());
        vocabulary = VocabularyTrie.of(tokenizer, tokenizer.vocabSize());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    private static int id(String spelling) {
        return tokenizer.tokenId(spelling).orElseThrow();
    }

    /** A word's space is its token's: "▁York" goes after "New" and "York" does not; the first word has none. */
    @Test
    void aTokensLeadingSpaceIsPartOfItsText() {
        assertThat(vocabulary.text(id("▁York"))).isEqualTo(" York");
        assertThat(vocabulary.text(id("▁"))).isEqualTo(" ");
        assertThat(vocabulary.pieces().bytesOf(id("<0xE6>"))).containsExactly(0xE6);
        int end = tokenizer.eosTokenId().orElseThrow();

        GrammarConstraint constraint = new GrammarConstraint(OutputGrammar.choice(List.of("New York", "日本")),
                new TokenMasks(vocabulary));
        int[] start = constraint.allowedBits(Set.of(end));
        assertThat(TokenBits.allows(start, id("New"))).isTrue();
        assertThat(TokenBits.allows(start, id("▁New"))).as("a space the choice does not begin with").isFalse();
        assertThat(TokenBits.allows(start, id("<0xE6>"))).as("the lead byte of 日").isTrue();
        assertThat(TokenBits.allows(start, id("本"))).isFalse();
        constraint.accept(id("New"));
        int[] afterNew = constraint.allowedBits(Set.of(end));
        assertThat(TokenBits.allows(afterNew, id("▁York"))).isTrue();
        assertThat(TokenBits.allows(afterNew, id("▁"))).isTrue();
        assertThat(TokenBits.allows(afterNew, id("York"))).as("York without its space").isFalse();
        assertThat(TokenBits.allows(afterNew, end)).isFalse();
        constraint.accept(id("▁York"));
        assertThat(constraint.done()).isTrue();

        GrammarConstraint inBytes = new GrammarConstraint(OutputGrammar.choice(List.of("New York", "日本")),
                new TokenMasks(vocabulary));
        for (String bytes : List.of("<0xE6>", "<0x97>", "<0xA5>")) {
            inBytes.accept(id(bytes));
        }
        assertThat(inBytes.allowedTokens()[id("本")]).isTrue();
        inBytes.accept(id("本"));
        assertThat(inBytes.done()).isTrue();
    }

    /**
     * Along answers spelled by the longest pieces (and bytes), and along the tokenizer's own split of a text (its
     * first token carrying the space the normalizer prepends, " New"), every token is taken and the walk
     * allows exactly the one-by-one reference's tokens at every step.
     */
    @Test
    void theWalkAllowsExactlyTheTokensThatContinueTheOutput() {
        String schema = """
                {"type": "object", "properties": {"city": {"enum": ["New York", "日本"]},
                 "note": {"type": "string", "maxLength": 6}}, "required": ["city", "note"]}""";
        assertWalkEqualsReference(OutputGrammar.jsonSchema(schema),
                spell("{\"city\": \"New York\", \"note\": \"the 日本\"}"));
        assertWalkEqualsReference(OutputGrammar.jsonObject(), spell("{\"a\": [\"the café\", 1, \"日\"]}"));
        assertWalkEqualsReference(OutputGrammar.regex("(yes|New) [A-Z][a-z]{1,5}( 日本)?"), spell("New York 日本"));
        assertWalkEqualsReference(OutputGrammar.regex(" New [A-Z][a-z]{1,5}( 日本)?"),
                tokenizer.encode("New York 日本", false));
    }

    private static void assertWalkEqualsReference(OutputGrammar grammar, int[] tokens) {
        GrammarConstraint constraint = new GrammarConstraint(grammar, new TokenMasks(vocabulary));
        for (int i = 0; i <= tokens.length; i++) {
            boolean[] walked = constraint.allowedTokens();
            assertThat(walked).as("%s after %d tokens", grammar, i).isEqualTo(constraint.allowedTokensOneByOne());
            if (i < tokens.length) {
                assertThat(TokenBits.allows(constraint.allowedBits(Set.of()), tokens[i]))
                        .as("%s: token %d (%s)", grammar, i, vocabulary.text(tokens[i])).isTrue();
                constraint.accept(tokens[i]);
            }
        }
        assertThat(constraint.done()).as("%s whole", grammar).isTrue();
    }

    /** {@code text} spelled by the longest token text at each point, and by bytes where none holds the character. */
    private static int[] spell(String text) {
        List<Integer> tokens = new ArrayList<>();
        int at = 0;
        while (at < text.length()) {
            int best = -1;
            int bestLength = 0;
            for (int id = 0; id < vocabulary.size(); id++) {
                String piece = vocabulary.text(id);
                if (piece != null && piece.length() > bestLength && text.startsWith(piece, at)) {
                    best = id;
                    bestLength = piece.length();
                }
            }
            if (best >= 0) {
                tokens.add(best);
                at += bestLength;
            } else {
                int end = text.offsetByCodePoints(at, 1);
                for (byte b : text.substring(at, end).getBytes(StandardCharsets.UTF_8)) {
                    tokens.add(id(String.format("<0x%02X>", b & 0xff)));
                }
                at = end;
            }
        }
        return tokens.stream().mapToInt(Integer::intValue).toArray();
    }
}
