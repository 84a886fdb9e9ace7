package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.net.URISyntaxException;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Chat prompts against transformers' apply_chat_template(..., tokenize=False) on the fixture in test
 * resources fixtures/tokenizer/ (see {@link TokenizerFixtureTest}). A missing fixture fails the test.
 */
class ChatTemplateFixtureTest {

    static Stream<Arguments> chatCases() throws IOException {
        JsonNode cases = TokenizerFixtureTest.expected().path("chat");
        assertThat(cases.size()).as("chat cases in expected.json").isPositive();
        List<Arguments> out = new ArrayList<>();
        for (JsonNode testCase : cases) {
            out.add(Arguments.of(testCase));
        }
        return out.stream();
    }

    @ParameterizedTest
    @MethodSource("chatCases")
    void rendersAsTransformersDoes(JsonNode testCase) throws IOException, URISyntaxException {
        ChatTemplate template = ChatTemplate.load(TokenizerFixtureTest.fixtureFolder());
        List<ChatMessage> messages = new ArrayList<>();
        for (JsonNode message : testCase.path("messages")) {
            messages.add(new ChatMessage(message.path("role").asText(), message.path("content").asText()));
        }
        assertThat(template.render(messages, testCase.path("add_generation_prompt").asBoolean()))
                .isEqualTo(testCase.path("text").asText());
    }
}
