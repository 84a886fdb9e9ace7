package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Decoders read as steps on one token, against what Hugging Face tokenizers' decoder (run through DJL)
 * makes of the token after a letter: a Strip after a Fuse leaves a token inside a text alone, one before a Fuse strips
 * each token; byte fallback takes "&lt;0xHH&gt;" in either case of hex digit and nothing else; a step not
 * read (a Replace of a regex, WordPiece) leaves the decoder unread.
 */
class SpellingDecoderTest {

    private static SpellingDecoder decoder(String json) throws Exception {
        return SpellingDecoder.of(new ObjectMapper().readTree(json));
    }

    private static String text(SpellingDecoder decoder, String spelling) {
        return new String(decoder.bytes(spelling), StandardCharsets.UTF_8);
    }

    /** What the tokenizers library decodes "a" then {@code spelling} to, with {@code decoder}, less the "a". */
    private static String afterALetter(Path folder, String decoder, String spelling) throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        ObjectNode model = root.putObject("model").put("type", "WordLevel").put("unk_token", "a");
        model.putObject("vocab").put("a", 0).put(spelling, 1);
        root.set("decoder", json.readTree(decoder));
        Files.writeString(folder.resolve("tokenizer.json"), root.toString());
        try (Tokenizer tokenizer = Tokenizer.loadFolder(folder)) {
            return tokenizer.decode(new int[] {0, 1}, false).substring(1);
        }
    }

    private static final String LLAMA = """
            {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
             {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}""";
    private static final String STRIP_EACH = """
            {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
             {"type": "Strip", "content": " ", "start": 1, "stop": 1}]}""";
    private static final String METASPACE = "{\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"first\"}";

    @Test
    void stepsReadAsTheLibraryDecodesATokenAfterOthers(@TempDir Path folder) throws Exception {
        for (String[] example : new String[][] {{LLAMA, "▁York"}, {LLAMA, "▁▁x▁"}, {STRIP_EACH, "▁▁York▁"},
                {METASPACE, "▁a▁b"}}) {
            assertThat(text(decoder(example[0]), example[1])).as("%s %s", example[0], example[1])
                    .isEqualTo(afterALetter(folder, example[0], example[1]));
        }
    }

    @Test
    void aStripAfterAFuseLeavesATokenInsideATextAlone() throws Exception {
        SpellingDecoder llama = decoder(LLAMA);
        assertThat(text(llama, "▁York")).isEqualTo(" York");
        assertThat(text(llama, "▁▁x▁")).isEqualTo("  x ");
        assertThat(llama.bytes("<0xE6>")).containsExactly(0xE6);
        assertThat(llama.bytes("<0xe6>")).containsExactly(0xE6);
        assertThat(text(llama, "<0xE6")).isEqualTo("<0xE6");
        assertThat(text(llama, "<0xG6>")).isEqualTo("<0xG6>");

        assertThat(text(decoder(STRIP_EACH), "▁▁York▁")).as("stripped as a token of its own").isEqualTo(" York");
    }

    @Test
    void metaspaceAndByteLevelDecoders() throws Exception {
        assertThat(text(decoder(METASPACE), "▁a▁b")).isEqualTo(" a b");
        SpellingDecoder byteLevel = decoder("{\"type\": \"ByteLevel\", \"add_prefix_space\": true}");
        assertThat(text(byteLevel, "Ġthe")).isEqualTo(" the");
        assertThat(byteLevel.bytes("æ")).containsExactly(0xE6);
        assertThat(byteLevel.bytes("☃")).as("a character outside the scheme").isNull();
    }

    @Test
    void aStepNotReadLeavesTheDecoderUnread() throws Exception {
        assertThat(decoder("{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"▁+\"}, \"content\": \" \"}")).isNull();
        assertThat(decoder("{\"type\": \"WordPiece\", \"prefix\": \"##\"}")).isNull();
        assertThat(decoder("""
                {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "CTC"}]}""")).isNull();
        assertThat(decoder("{}")).isNull();
        assertThat(decoder("{\"type\": \"Fuse\"}")).as("no step that changes a token").isNull();
    }
}
