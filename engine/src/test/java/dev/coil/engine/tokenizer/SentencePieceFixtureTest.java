package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * SentencePiece-style tokenizers as Hugging Face saves them, against what transformers and tokenizers
 * returned for them (tools/reference/sentencepiece_fixture.py): a byte-fallback BPE in Llama 2's
 * tokenizer.json layout (a Prepend and Replace normalizer) and in the layout transformers' own
 * LlamaTokenizer writes (a Metaspace pre-tokenizer), with a Replace, ByteFallback, Fuse, Strip decoder.
 *
 * <p>Every text's ids and decode are transformers'. And for every cut of a text's ids into a prompt and
 * an answer, the answer's text from {@link StreamingDecoder#answering} is the whole's decode with the
 * prompt's taken off, skipping special tokens and keeping them; where the prompt ends inside a character
 * (its decode, ending in U+FFFD, is no prefix of the whole's), it is the text tokenizers' DecodeStream
 * gives for the answer after stepping through the prompt, as vLLM streams it: the whole character first.
 * Where the prompt holds text, the answer's text is its {@link Tokenizer#tokenBytes} joined. A missing
 * fixture fails the test.
 */
class SentencePieceFixtureTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"tokenizer_sentencepiece_llama2", "tokenizer_sentencepiece_transformers"})
    void idsTextAndAnswersAreTransformers(String name) throws Exception {
        URL url = SentencePieceFixtureTest.class.getResource("/fixtures/" + name + "/tokenizer.json");
        assertThat(url).as("test resource fixtures/%s/tokenizer.json", name).isNotNull();
        Path folder = Path.of(url.toURI()).getParent();
        JsonNode expected = JSON.readTree(Files.readString(folder.resolve("expected.json")));
        try (Tokenizer tokenizer = Tokenizer.loadFolder(folder)) {
            // The byte tokens are vocabulary entries, as Llama's, not special added tokens.
            int lead = tokenizer.tokenId("<0xE6>").orElseThrow();
            assertThat(tokenizer.isSpecial(lead)).isFalse();
            assertThat(tokenizer.tokenBytes(lead)).containsExactly(0xE6);
            for (JsonNode text : expected.get("encode")) {
                int[] ids = ints(text.get("ids"));
                assertThat(tokenizer.encode(text.get("text").asText(), false)).as(text.toString()).containsExactly(ids);
                assertThat(tokenizer.encode(text.get("text").asText(), true)).as(text.toString())
                        .containsExactly(ints(text.get("ids_with_special_tokens")));
                assertThat(tokenizer.decode(ids, false)).isEqualTo(text.get("decoded").asText());
            }
            int checked = 0;
            int insideACharacter = 0;
            int spelled = 0;
            for (JsonNode cut : expected.get("continuations")) {
                int[] prompt = ints(cut.get("prompt"));
                int[] answer = ints(cut.get("answer"));
                for (boolean skip : new boolean[] {true, false}) {
                    JsonNode text = cut.get(skip ? "skipping" : "keeping");
                    if (text.isNull()) {
                        text = cut.get(skip ? "skipping_stream" : "keeping_stream");
                        assertThat(text.isNull()).as("DecodeStream's text in %s", cut).isFalse();
                        insideACharacter++;
                    }
                    String streamed = stream(StreamingDecoder.answering(tokenizer, prompt, skip), answer);
                    assertThat(streamed).as("%s, skipping special tokens %s", cut, skip).isEqualTo(text.asText());
                    checked++;
                }
                JsonNode skipping = cut.get("skipping");
                if (!skipping.isNull() && !tokenizer.decode(prompt, true).isEmpty()) {
                    assertThat(joinedBytes(tokenizer, answer)).as(cut.toString()).isEqualTo(skipping.asText());
                    spelled++;
                }
            }
            assertThat(checked).isGreaterThan(200);
            assertThat(insideACharacter).isGreaterThan(10);
            assertThat(spelled).isGreaterThan(100);
        }
    }

    private static String stream(StreamingDecoder decoder, int[] ids) {
        StringBuilder text = new StringBuilder();
        for (int id : ids) {
            text.append(decoder.accept(id));
        }
        return text.append(decoder.flush()).toString();
    }

    private static String joinedBytes(Tokenizer tokenizer, int[] ids) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int id : ids) {
            if (!tokenizer.isSpecial(id)) {
                bytes.writeBytes(tokenizer.tokenBytes(id));
            }
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }

    private static int[] ints(JsonNode array) {
        int[] values = new int[array.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = array.get(i).asInt();
        }
        return values;
    }
}
