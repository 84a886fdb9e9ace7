package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Renders the templates in test resources chat-templates/ and compares with what Python's Jinja2 renders
 * when set up as transformers sets it up (cases.json, written by generate_cases.py in that folder). The
 * templates exercise the constructs real chat templates use: whitespace control, trim/lstrip blocks,
 * namespaces, reversed slices, Python string methods, tojson, macros, loop controls, raise_exception.
 */
class ChatTemplateJinjaParityTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    static Stream<Arguments> cases() throws IOException {
        JsonNode root = JSON.readTree(resource("cases.json"));
        Clock pinned = Clock.fixed(LocalDateTime.parse(root.path("pinned_now").asText()).toInstant(ZoneOffset.UTC),
                ZoneOffset.UTC);
        List<Arguments> cases = new ArrayList<>();
        int index = 0;
        for (JsonNode testCase : root.path("cases")) {
            String name = testCase.path("template").asText();
            ChatTemplate template = ChatTemplate.of(new String(resource(name), StandardCharsets.UTF_8),
                    testCase.path("bos_token").asText(), testCase.path("eos_token").asText()).withClock(pinned);
            cases.add(Arguments.of(index++ + " " + name, template, testCase));
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void rendersAsJinja2Does(String name, ChatTemplate template, JsonNode testCase) {
        List<ChatMessage> messages = new ArrayList<>();
        for (JsonNode message : testCase.path("messages")) {
            // A turn's other keys (tool_calls, tool_call_id, name) reach the template as they are; a null
            // content is empty text, as the server reads it.
            Map<String, Object> fields = new LinkedHashMap<>();
            message.properties().forEach(field -> {
                if (!field.getKey().equals("role") && !field.getKey().equals("content")) {
                    fields.put(field.getKey(), JSON.convertValue(field.getValue(), Object.class));
                }
            });
            messages.add(new ChatMessage(message.path("role").asText(),
                    message.path("content").isNull() ? "" : message.path("content").asText(), fields));
        }
        boolean addGenerationPrompt = testCase.path("add_generation_prompt").asBoolean();
        @SuppressWarnings("unchecked")
        Map<String, Object> variables = JSON.convertValue(testCase.path("variables"), Map.class);

        if (testCase.has("error")) {
            assertThatThrownBy(() -> template.render(messages, addGenerationPrompt, variables))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageEndingWith(": " + testCase.path("error").asText());
        } else {
            assertThat(template.render(messages, addGenerationPrompt, variables))
                    .isEqualTo(testCase.path("text").asText());
        }
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = ChatTemplateJinjaParityTest.class.getResourceAsStream("/chat-templates/" + name)) {
            if (in == null) {
                throw new IOException("test resource chat-templates/" + name + " is missing");
            }
            return in.readAllBytes();
        }
    }
}
