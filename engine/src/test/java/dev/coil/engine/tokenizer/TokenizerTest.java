package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalInt;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The wrapper around the tokenizers library, on a hand-written byte-level BPE (test resources
 * tokenizer-unit/): 3 special tokens, the 256 byte symbols at ids 3..258, and merges
 * "Ġ t" (259), "h e" (260), "Ġt he" (261), "l l" (262), "he ll" (263), "hell o" (264) and the first two
 * bytes of 中 (265). Its post-processor prepends &lt;|endoftext|&gt; when special tokens are added. The ids
 * below follow from those merges by hand.
 */
class TokenizerTest {

    private static Tokenizer tokenizer;

    static Path unitFolder() throws URISyntaxException {
        return Path.of(TokenizerTest.class.getResource("/tokenizer-unit/tokenizer.json").toURI()).getParent();
    }

    @BeforeAll
    static void load() throws Exception {
        tokenizer = Tokenizer.loadFolder(unitFolder());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @Test
    void encodesByTheMergesWithoutSpecialTokensUnlessAsked() {
        // "the" -> t, he; " hello" -> Ġ, hello; " 中" -> Ġ, (E4 B8), AD; " a" -> Ġ, a
        int[] expected = {119, 260, 35, 264, 35, 265, 176, 35, 100};
        assertThat(tokenizer.encode("the hello 中 a", false)).containsExactly(expected);
        assertThat(tokenizer.encode(" the", false)).containsExactly(261);
        assertThat(tokenizer.encode("the", true)).containsExactly(0, 119, 260);
    }

    @Test
    void addedTokensAreSplitOutOfText() {
        assertThat(tokenizer.encode("<|im_start|>the<|im_end|>", false)).containsExactly(1, 119, 260, 2);
    }

    @Test
    void decodesAndSkipsSpecialTokensOnRequest() {
        int[] ids = {1, 119, 260, 35, 264, 35, 265, 176, 2};
        assertThat(tokenizer.decode(ids, false)).isEqualTo("<|im_start|>the hello 中<|im_end|>");
        assertThat(tokenizer.decode(ids, true)).isEqualTo("the hello 中");
    }

    @Test
    void neverTruncatesLongInputs() {
        String text = "the hello ".repeat(2000);
        int[] ids = tokenizer.encode(text, false);
        // "the" (2 ids), " hello" (2), then 1999 times " the" (1) and " hello" (2), then " " (1).
        assertThat(ids.length).isEqualTo(2 + 2 + 1999 * 3 + 1);
        assertThat(tokenizer.decode(ids, false)).isEqualTo(text);
    }

    @Test
    void indexesTheVocabularyAndSpecialTokens() {
        assertThat(tokenizer.vocabSize()).isEqualTo(266);
        assertThat(tokenizer.tokenId("Ġthe")).isEqualTo(OptionalInt.of(261));
        assertThat(tokenizer.tokenId("<|im_end|>")).isEqualTo(OptionalInt.of(2));
        assertThat(tokenizer.tokenId("not a token")).isEmpty();
        assertThat(tokenizer.isSpecial(2)).isTrue();
        assertThat(tokenizer.isSpecial(261)).isFalse();
    }

    @Test
    void readsBosAndEosInBothConfigForms() {
        // tokenizer_config.json spells bos_token as an AddedToken object and eos_token as a string.
        assertThat(tokenizer.bosToken()).isEqualTo("<|endoftext|>");
        assertThat(tokenizer.eosToken()).isEqualTo("<|im_end|>");
        assertThat(tokenizer.eosTokenId()).isEqualTo(OptionalInt.of(2));
    }

    @Test
    void loadsWithoutAConfig() throws Exception {
        try (Tokenizer bare = Tokenizer.load(unitFolder().resolve("tokenizer.json"), null)) {
            assertThat(bare.bosToken()).isNull();
            assertThat(bare.eosTokenId()).isEmpty();
            assertThat(bare.encode("the", false)).containsExactly(119, 260);
        }
    }

    /**
     * A byte-level token's bytes, read back from its spelling: the 256 byte symbols are the 256 bytes,
     * the merge of 中's first two bytes is E4 B8, an encoding's tokens give back the text's UTF-8, and
     * an added token's bytes are its text's. A tokenizer whose decoder is not byte-level has none.
     */
    @Test
    void byteLevelTokensGiveBackTheirBytes(@TempDir Path folder) throws IOException {
        java.util.Set<Integer> bytes = new java.util.HashSet<>();
        for (int id = 3; id <= 258; id++) {
            byte[] one = tokenizer.tokenBytes(id);
            assertThat(one).as("token %d", id).hasSize(1);
            bytes.add(one[0] & 0xff);
        }
        assertThat(bytes).hasSize(256);
        assertThat(tokenizer.tokenBytes(265)).containsExactly(0xE4, 0xB8);
        String text = "the hello 中 a";
        java.io.ByteArrayOutputStream spelled = new java.io.ByteArrayOutputStream();
        for (int id : tokenizer.encode(text, false)) {
            spelled.writeBytes(tokenizer.tokenBytes(id));
        }
        assertThat(spelled.toByteArray()).isEqualTo(text.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        assertThat(tokenizer.tokenBytes(0)).isEqualTo("<|endoftext|>".getBytes(java.nio.charset.StandardCharsets.UTF_8));
        assertThat(tokenizer.tokenBytes(-1)).isNull();
        assertThat(tokenizer.tokenBytes(tokenizer.vocabSize())).isNull();

        Files.writeString(folder.resolve("tokenizer.json"), """
                {"model": {"type": "WordLevel", "vocab": {"a": 0, "b": 1, "[UNK]": 2}, "unk_token": "[UNK]"},
                 "pre_tokenizer": {"type": "Whitespace"}}""");
        try (Tokenizer words = Tokenizer.loadFolder(folder)) {
            assertThat(words.encode("a b", false)).containsExactly(0, 1);
            assertThat(words.tokenBytes(0)).isNull();
        }
    }

    @Test
    void badFilesFailWithTheirPath(@TempDir Path folder) throws IOException {
        Path notJson = Files.writeString(folder.resolve("tokenizer.json"), "{ nope");
        assertThatThrownBy(() -> Tokenizer.load(notJson, null))
                .isInstanceOf(IOException.class)
                .hasMessageContaining(notJson.toString())
                .hasMessageContaining("not valid JSON");

        Path noModel = Files.writeString(folder.resolve("other.json"), "{\"version\": \"1.0\"}");
        assertThatThrownBy(() -> Tokenizer.load(noModel, new ObjectMapper().createObjectNode()))
                .isInstanceOf(IOException.class)
                .hasMessageContaining(noModel.toString())
                .hasMessageContaining("\"model\"");
    }
}
