package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Exact ids and text against Hugging Face: the fixture in test resources fixtures/tokenizer/ is a byte-level
 * BPE trained and saved with transformers, and expected.json holds what transformers returned for encode,
 * decode and chat prompts (versions in fixtures/versions.json). A missing fixture fails the test.
 */
class TokenizerFixtureTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static Tokenizer tokenizer;

    static Path fixtureFolder() throws URISyntaxException {
        URL url = TokenizerFixtureTest.class.getResource("/fixtures/tokenizer/tokenizer.json");
        if (url == null) {
            throw new IllegalStateException("test resource fixtures/tokenizer/tokenizer.json is missing");
        }
        return Path.of(url.toURI()).getParent();
    }

    static JsonNode expected() throws IOException {
        try (InputStream in = TokenizerFixtureTest.class.getResourceAsStream("/fixtures/tokenizer/expected.json")) {
            if (in == null) {
                throw new IOException("test resource fixtures/tokenizer/expected.json is missing");
            }
            return JSON.readTree(in);
        }
    }

    @BeforeAll
    static void load() throws Exception {
        tokenizer = Tokenizer.loadFolder(fixtureFolder());
    }

    @AfterAll
    static void close() {
        if (tokenizer != null) {
            tokenizer.close();
        }
    }

    static Stream<Arguments> encodeCases() throws IOException {
        return cases("encode");
    }

    static Stream<Arguments> decodeCases() throws IOException {
        return cases("decode");
    }

    static Stream<Arguments> chatCases() throws IOException {
        return cases("chat");
    }

    private static Stream<Arguments> cases(String section) throws IOException {
        JsonNode cases = expected().path(section);
        assertThat(cases.size()).as("cases in expected.json's %s", section).isPositive();
        List<Arguments> out = new ArrayList<>();
        for (JsonNode testCase : cases) {
            out.add(Arguments.of(testCase));
        }
        return out.stream();
    }

    @ParameterizedTest
    @MethodSource("encodeCases")
    void encodesToTheIdsHuggingFaceGives(JsonNode testCase) {
        String text = testCase.path("text").asText();
        assertThat(tokenizer.encode(text, testCase.path("add_special_tokens").asBoolean()))
                .as("encode(%s)", text)
                .containsExactly(ids(testCase.path("ids")));
    }

    @ParameterizedTest
    @MethodSource("decodeCases")
    void decodesToTheTextHuggingFaceGives(JsonNode testCase) {
        int[] ids = ids(testCase.path("ids"));
        boolean skipSpecial = testCase.path("skip_special_tokens").asBoolean();
        String expected = testCase.path("text").asText();
        assertThat(tokenizer.decode(ids, skipSpecial)).isEqualTo(expected);
        assertThat(String.join("", StreamingDecoderTest.stream(tokenizer, ids, skipSpecial))).isEqualTo(expected);
    }

    @ParameterizedTest
    @MethodSource("chatCases")
    void encodesRenderedChatPromptsAsHuggingFaceDoes(JsonNode testCase) {
        if (testCase.has("ids")) {
            assertThat(tokenizer.encode(testCase.path("text").asText(), false))
                    .containsExactly(ids(testCase.path("ids")));
        }
    }

    @Test
    void streamingMatchesFullDecodeOnEveryEncodeCase() throws IOException {
        for (JsonNode testCase : expected().path("encode")) {
            int[] ids = ids(testCase.path("ids"));
            assertThat(String.join("", StreamingDecoderTest.stream(tokenizer, ids, false)))
                    .isEqualTo(testCase.path("text").asText());
        }
    }

    @Test
    void vocabularySizeMatches() throws IOException {
        assertThat(tokenizer.vocabSize()).isEqualTo(expected().path("vocab_size").asInt());
    }

    private static int[] ids(JsonNode array) {
        int[] ids = new int[array.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = array.get(i).asInt();
        }
        return ids;
    }
}
