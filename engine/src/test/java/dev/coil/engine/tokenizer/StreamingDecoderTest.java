package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Streaming equals non-streaming: the deltas of a {@link StreamingDecoder} concatenate to the full decode,
 * on text whose characters span several byte-level tokens (accents, CJK, emoji), with and without special
 * tokens in the stream.
 */
class StreamingDecoderTest {

    private static Tokenizer tokenizer;

    @BeforeAll
    static void load() throws Exception {
        tokenizer = Tokenizer.loadFolder(TokenizerTest.unitFolder());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "the hello 中 a",
        "café naïve déjà vu",
        "日本語のテキスト 中文",
        "👋🌍 emoji 🙂 and 👨‍👩‍👧 family",
        "<|im_start|>user\nhi 中<|im_end|><|endoftext|>",
        "\uFFFD literal replacement character \uFFFD",
    })
    void deltasConcatenateToTheFullDecode(String text) {
        int[] ids = tokenizer.encode(text, false);
        for (boolean skipSpecial : new boolean[] {false, true}) {
            List<String> deltas = stream(ids, skipSpecial);
            assertThat(String.join("", deltas))
                    .as("skipSpecialTokens=%s, deltas %s", skipSpecial, deltas)
                    .isEqualTo(tokenizer.decode(ids, skipSpecial));
            if (!text.contains("\uFFFD")) {
                assertThat(deltas).as("no delta shows half a character").noneMatch(d -> d.contains("\uFFFD"));
            }
        }
    }

    @Test
    void holdsBackTheFirstBytesOfACharacter() {
        // 265 is the first two bytes of 中 (E4 B8), 176 its last byte (AD).
        StreamingDecoder decoder = new StreamingDecoder(tokenizer, false);
        assertThat(decoder.accept(119)).isEqualTo("t");
        assertThat(decoder.accept(35)).isEqualTo(" ");
        assertThat(decoder.accept(265)).isEmpty();
        assertThat(decoder.accept(176)).isEqualTo("中");
        assertThat(decoder.flush()).isEmpty();
        assertThat(decoder.ids()).containsExactly(119, 35, 265, 176);
    }

    @Test
    void flushReleasesAnUnfinishedCharacterAsTheFullDecodeDoes() {
        StreamingDecoder decoder = new StreamingDecoder(tokenizer, false);
        String text = decoder.accept(119) + decoder.accept(265) + decoder.flush();
        assertThat(text).isEqualTo(tokenizer.decode(new int[] {119, 265}, false)).endsWith("\uFFFD");
    }

    /**
     * An answer to a prompt cut anywhere in a text, even inside a character (a prompt given as token
     * ids), goes on from the prompt's text: the prompt's decode, without the U+FFFD of a character it
     * leaves unfinished, followed by the answer's deltas is the whole's decode, and no delta shows half
     * a character (the answer's first delta is the whole character its bytes finish).
     */
    @ParameterizedTest
    @ValueSource(strings = {"the hello 中 a", "café naïve déjà vu", "👋🌍 emoji 🙂", "日本語のテキスト 中文"})
    void anAnswerFinishesTheCharacterItsPromptBegins(String text) {
        int[] ids = tokenizer.encode(text, false);
        int cutsInsideACharacter = 0;
        for (int cut = 1; cut < ids.length; cut++) {
            int[] prompt = java.util.Arrays.copyOfRange(ids, 0, cut);
            int[] answer = java.util.Arrays.copyOfRange(ids, cut, ids.length);
            String promptText = tokenizer.decode(prompt, true);
            if (promptText.endsWith("\uFFFD")) {
                promptText = promptText.substring(0, promptText.length() - 1);
                cutsInsideACharacter++;
            }
            StreamingDecoder decoder = StreamingDecoder.answering(tokenizer, prompt, true);
            List<String> deltas = new ArrayList<>();
            for (int id : answer) {
                deltas.add(decoder.accept(id));
            }
            deltas.add(decoder.flush());
            assertThat(promptText + String.join("", deltas)).as("cut at %d: %s", cut, deltas)
                    .isEqualTo(tokenizer.decode(ids, true));
            assertThat(deltas).as("cut at %d", cut).noneMatch(delta -> delta.contains("\uFFFD"));
            assertThat(decoder.ids()).containsExactly(answer);
        }
        assertThat(cutsInsideACharacter).isPositive();
    }

    /**
     * A prompt's unfinished character that the answer does not go on with stays the prompt's U+FFFD:
     * the answer's text is its own, whether it begins with ASCII or with another character's bytes.
     */
    @Test
    void anAnswerThatDoesNotFinishThePromptsCharacterAddsOnlyItsOwnText() {
        // 265 is the first two bytes of 中 (E4 B8), 176 its last (AD); 119 is "t".
        int[] prompt = {119, 35, 265};
        StreamingDecoder decoder = StreamingDecoder.answering(tokenizer, prompt, true);
        assertThat(decoder.accept(119)).isEqualTo("t");
        assertThat(decoder.flush()).isEmpty();
        assertThat(tokenizer.decode(new int[] {119, 35, 265, 119}, true)).isEqualTo("t \uFFFDt");

        decoder = StreamingDecoder.answering(tokenizer, prompt, true);
        assertThat(decoder.accept(265)).isEmpty();
        assertThat(decoder.accept(176)).isEqualTo("中");
        assertThat(decoder.flush()).isEmpty();
        assertThat(decoder.ids()).containsExactly(265, 176);
        assertThat(tokenizer.decode(new int[] {119, 35, 265, 265, 176}, true)).isEqualTo("t \uFFFD中");

        decoder = StreamingDecoder.answering(tokenizer, prompt, true);
        assertThat(decoder.accept(176) + decoder.accept(265) + decoder.flush())
                .as("the prompt's character finished, the answer's own left unfinished").isEqualTo("中\uFFFD");
    }

    static List<String> stream(int[] ids, boolean skipSpecialTokens) {
        return stream(tokenizer, ids, skipSpecialTokens);
    }

    static List<String> stream(Tokenizer tokenizer, int[] ids, boolean skipSpecialTokens) {
        StreamingDecoder decoder = new StreamingDecoder(tokenizer, skipSpecialTokens);
        List<String> deltas = new ArrayList<>();
        for (int id : ids) {
            deltas.add(decoder.accept(id));
        }
        deltas.add(decoder.flush());
        return deltas;
    }
}
