package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link ChatTemplate#renderContinuing} against transformers' {@code apply_chat_template(...,
 * continue_final_message=True)}: continue_cases.json in test resources chat-templates/, written on the
 * GPU machine by tools/reference/continue_final_message.py, with the bundled demo model's template and
 * those of that folder, and the demo tokenizer's special tokens.
 */
class ContinueFinalMessageParityTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Path DEMO_CONFIG = Path.of("..", "models", "coil-demo", "tokenizer_config.json");

    static Stream<Arguments> cases() throws IOException {
        JsonNode root = JSON.readTree(resource("continue_cases.json"));
        Clock generatedOn = Clock.fixed(LocalDate.parse(root.path("generated_on").asText()).atTime(12, 0)
                .toInstant(ZoneOffset.UTC), ZoneOffset.UTC);
        ObjectNode config = (ObjectNode) JSON.readTree(Files.readString(DEMO_CONFIG));
        List<Arguments> cases = new ArrayList<>();
        int index = 0;
        for (JsonNode testCase : root.path("cases")) {
            String name = testCase.path("template").asText();
            ObjectNode withTemplate = config.deepCopy();
            if (!name.equals("demo")) {
                withTemplate.put("chat_template", new String(resource(name), StandardCharsets.UTF_8));
            }
            ChatTemplate template = ChatTemplate.fromTokenizerConfig(withTemplate, name).withClock(generatedOn);
            cases.add(Arguments.of(index++ + " " + name, template, testCase));
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void continuesAsTransformersDoes(String name, ChatTemplate template, JsonNode testCase) {
        List<ChatMessage> messages = new ArrayList<>();
        for (JsonNode message : testCase.path("messages")) {
            messages.add(new ChatMessage(message.path("role").asText(), message.path("content").asText()));
        }
        if (testCase.has("error")) {
            // transformers' error is the template's own (raise_exception): the same words here.
            String words = testCase.path("error").asText().replaceFirst("^TemplateError: ", "");
            assertThatThrownBy(() -> template.renderContinuing(messages, Map.of()))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageEndingWith(": " + words);
        } else {
            assertThat(template.renderContinuing(messages, Map.of())).isEqualTo(testCase.path("text").asText());
        }
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = ContinueFinalMessageParityTest.class.getResourceAsStream("/chat-templates/" + name)) {
            if (in == null) {
                throw new IOException("missing test resource chat-templates/" + name);
            }
            return in.readAllBytes();
        }
    }
}
