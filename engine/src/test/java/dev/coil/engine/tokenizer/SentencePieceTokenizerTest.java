package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A SentencePiece-style vocabulary (tokenizer-sentencepiece: "▁" for a space, "&lt;0xE6&gt;" byte
 * fallback, a decoder that strips the text's leading space), as Llama 2's and Mistral 7B's
 * tokenizer.json have: a token's bytes are those it adds after other text, and a generated text keeps
 * the space its first token begins with.
 */
public class SentencePieceTokenizerTest {

    private static Tokenizer tokenizer;

    /** The folder of tokenizer-sentencepiece's tokenizer.json and tokenizer_config.json. */
    public static Path folder() throws URISyntaxException {
        return Path.of(SentencePieceTokenizerTest.class.getResource("/tokenizer-sentencepiece/tokenizer.json").toURI())
                .getParent();
    }

    @BeforeAll
    static void load() throws Exception {
        tokenizer = Tokenizer.loadFolder(folder());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    private static int id(String spelling) {
        return tokenizer.tokenId(spelling).orElseThrow();
    }

    @Test
    void tokensGiveTheBytesTheyAddAfterOtherText() {
        assertThat(tokenizer.decode(new int[] {id("▁York")}, false)).as("alone, the leading space is dropped")
                .isEqualTo("York");
        assertThat(tokenizer.tokenBytes(id("▁York"))).isEqualTo(" York".getBytes(StandardCharsets.UTF_8));
        assertThat(tokenizer.tokenBytes(id("York"))).isEqualTo("York".getBytes(StandardCharsets.UTF_8));
        assertThat(tokenizer.tokenBytes(id("▁"))).containsExactly(' ');
        assertThat(tokenizer.tokenBytes(id("▁café"))).isEqualTo(" café".getBytes(StandardCharsets.UTF_8));
        assertThat(tokenizer.tokenBytes(id("<0xE6>"))).containsExactly(0xE6);
        assertThat(tokenizer.tokenBytes(id("<0x0A>"))).containsExactly('\n');
        assertThat(tokenizer.tokenBytes(id("</s>"))).isEqualTo("</s>".getBytes(StandardCharsets.UTF_8));

        // The tokenizer's own split of a text spells, byte for byte, the text after a space (the one the
        // normalizer prepends); 日 has no piece and goes in its three bytes.
        String text = "New York 日本, café\n";
        int[] ids = tokenizer.encode(text, false);
        assertThat(ids).contains(id("▁New"), id("▁York"), id("<0xE6>"), id("<0x97>"), id("<0xA5>"), id("本"));
        ByteArrayOutputStream spelled = new ByteArrayOutputStream();
        for (int token : ids) {
            spelled.writeBytes(tokenizer.tokenBytes(token));
        }
        assertThat(spelled.toString(StandardCharsets.UTF_8)).isEqualTo(" " + text);
        assertThat(tokenizer.decode(ids, false)).isEqualTo(text);
    }

    @Test
    void aLetterTokenReadsTheSameAloneAndAfterText() {
        int letter = tokenizer.letterToken();
        assertThat(tokenizer.decode(new int[] {letter}, false)).isEqualTo("a");
        assertThat(tokenizer.decode(new int[] {letter, id("▁York")}, false)).isEqualTo("a York");
    }

    /**
     * An answer goes on from its prompt's text: its first token keeps its space, the deltas hold back
     * the bytes of 日 until it is whole, and the prompt's text and the answer's join as the whole
     * decodes. After a prompt of special tokens alone (BOS) the answer starts a text, as the whole
     * decodes there too; a text decoded from its start (a prompt's own tokens) drops its first space.
     */
    @Test
    void anAnswerGoesOnFromItsPromptsText() {
        int[] ids = tokenizer.encode("New York 日本", false);
        int[] prompt = tokenizer.encode("the", true);
        StreamingDecoder decoder = StreamingDecoder.answering(tokenizer, prompt, true);
        List<String> deltas = new ArrayList<>();
        for (int token : ids) {
            deltas.add(decoder.accept(token));
        }
        deltas.add(decoder.flush());
        assertThat(deltas).containsExactly(" New", " York", " ", "", "", "日", "本", "");
        assertThat(decoder.ids()).containsExactly(ids);
        int[] whole = java.util.stream.IntStream.concat(java.util.Arrays.stream(prompt), java.util.Arrays.stream(ids))
                .toArray();
        assertThat(tokenizer.decode(prompt, true) + String.join("", deltas)).isEqualTo(tokenizer.decode(whole, true));

        int bos = tokenizer.tokenId("<s>").orElseThrow();
        assertThat(stream(StreamingDecoder.answering(tokenizer, new int[] {bos}, true), ids)).isEqualTo("New York 日本");
        assertThat(stream(StreamingDecoder.answering(tokenizer, new int[] {bos}, false), ids))
                .as("<s> is text when special tokens are kept").isEqualTo(" New York 日本");
        assertThat(stream(new StreamingDecoder(tokenizer, true), ids)).isEqualTo("New York 日本");
    }

    private static String stream(StreamingDecoder decoder, int[] ids) {
        StringBuilder text = new StringBuilder();
        for (int token : ids) {
            text.append(decoder.accept(token));
        }
        return text.append(decoder.flush()).toString();
    }

    /** Unigram's [piece, score] vocabulary with a Metaspace decoder (T5's and Gemma's first layout). */
    @Test
    void unigramVocabulariesWithAMetaspaceDecoder(@TempDir Path folder) throws IOException {
        Files.writeString(folder.resolve("tokenizer.json"), """
                {"model": {"type": "Unigram", "unk_id": 0,
                           "vocab": [["<unk>", 0.0], ["▁a", -1.0], ["b", -2.0], ["▁", -3.0], ["a", -4.0]]},
                 "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
                 "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}}""");
        try (Tokenizer unigram = Tokenizer.loadFolder(folder)) {
            int[] ids = unigram.encode("ab a", false);
            assertThat(ids).containsExactly(1, 2, 1);
            assertThat(unigram.decode(ids, false)).isEqualTo("ab a");
            assertThat(unigram.tokenBytes(1)).containsExactly(' ', 'a');
            assertThat(unigram.tokenBytes(2)).containsExactly('b');
            assertThat(unigram.letterToken()).isEqualTo(4);
        }
    }

    /** A decoder step not read (WordPiece's "##") leaves the bytes untold, and no letter token to lead a stream. */
    @Test
    void aDecoderNotReadTellsNoBytes(@TempDir Path folder) throws IOException {
        Files.writeString(folder.resolve("tokenizer.json"), """
                {"model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                           "max_input_chars_per_word": 100, "vocab": {"[UNK]": 0, "a": 1, "##b": 2}},
                 "pre_tokenizer": {"type": "Whitespace"},
                 "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true}}""");
        try (Tokenizer wordPiece = Tokenizer.loadFolder(folder)) {
            assertThat(wordPiece.encode("ab", false)).containsExactly(1, 2);
            assertThat(wordPiece.tokenBytes(1)).isNull();
            assertThat(wordPiece.letterToken()).isEqualTo(-1);
        }
    }
}
