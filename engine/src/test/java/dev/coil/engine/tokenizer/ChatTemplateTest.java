package dev.coil.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading templates from model folders, the variables they see, and how failures are reported. */
class ChatTemplateTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<ChatMessage> HELLO = List.of(ChatMessage.user("Hello"));

    @Test
    void loadsTheTemplateOfTokenizerConfig() throws Exception {
        ChatTemplate template = ChatTemplate.load(TokenizerTest.unitFolder());
        assertThat(template.render(List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi")), true))
                .isEqualTo("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                        + "<|im_start|>assistant\n");
        assertThat(template.render(List.of(ChatMessage.user("Hi"), ChatMessage.assistant("Yo")), false))
                .isEqualTo("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n");
    }

    @Test
    void chatTemplateJinjaTakesPrecedence(@TempDir Path folder) throws IOException {
        writeConfig(folder, JSON.createObjectNode().put("chat_template", "from config").put("eos_token", "</s>"));
        Files.writeString(folder.resolve("chat_template.jinja"), "from file {{ eos_token }}\n");
        assertThat(ChatTemplate.load(folder).render(HELLO, true)).isEqualTo("from file </s>");
    }

    @Test
    void aFolderWithoutTemplateSaysToUseACompletionPrompt(@TempDir Path folder) throws IOException {
        writeConfig(folder, JSON.createObjectNode().put("eos_token", "</s>"));
        assertThatThrownBy(() -> ChatTemplate.load(folder))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(folder.resolve("tokenizer_config.json")
                        + " has no chat_template; use a completion prompt instead");

        Path empty = Files.createDirectory(folder.resolve("empty"));
        assertThatThrownBy(() -> ChatTemplate.load(empty))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(empty.toString())
                .hasMessageEndingWith("use a completion prompt instead");
    }

    @Test
    void picksTheDefaultOfTheNamedTemplateList() {
        ObjectNode config = JSON.createObjectNode();
        config.putArray("chat_template")
                .add(JSON.createObjectNode().put("name", "tool_use").put("template", "tools"))
                .add(JSON.createObjectNode().put("name", "default").put("template", "plain"));
        assertThat(ChatTemplate.fromTokenizerConfig(config, "config").render(HELLO, true)).isEqualTo("plain");
    }

    @Test
    void passesSpecialTokensAndExtraVariables() {
        ObjectNode config = JSON.createObjectNode()
                .put("chat_template", "{{ bos_token }}|{{ eos_token }}|{{ pad_token }}|{{ enable_thinking }}")
                .put("pad_token", "<pad>")
                .put("eos_token", "</s>");
        config.putObject("bos_token").put("content", "<s>").put("lstrip", false);
        ChatTemplate template = ChatTemplate.fromTokenizerConfig(config, "config");
        assertThat(template.render(HELLO, true, Map.of("enable_thinking", false))).isEqualTo("<s>|</s>|<pad>|False");
    }

    @Test
    void raiseExceptionRejectsTheMessagesWithTheTemplatesWords() {
        ChatTemplate template = ChatTemplate.of(
                "{% if messages[0].role != 'system' %}{{ raise_exception('A system message comes first') }}{% endif %}",
                null, null);
        assertThatThrownBy(() -> template.render(HELLO, true))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("the chat template rejected the messages: A system message comes first");
    }

    @Test
    void unsupportedSyntaxFailsAsAnEngineError() {
        ChatTemplate template = ChatTemplate.of("{% frobnicate %}", null, null);
        assertThatThrownBy(() -> template.render(HELLO, true))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("the chat template of an inline template could not be rendered")
                .hasMessageContaining("frobnicate");
    }

    @Test
    void messageTextIsNeverRenderedAsTemplate() {
        ChatTemplate template = ChatTemplate.of("{{ messages[0].content }}", null, null);
        String tricky = "{{ 7 * 7 }} {% if true %}x{% endif %} {# c #}";
        assertThat(template.render(List.of(ChatMessage.user(tricky)), false)).isEqualTo(tricky);
    }

    /**
     * continue_final_message as transformers cuts it: after the last message's content, with its
     * trailing space where the template kept it, without where the template trimmed it.
     */
    @Test
    void aContinuedConversationEndsWithTheLastMessagesText() {
        String turns = "{% for m in messages %}[{{ m.role }}]{{ m.content FILTER }}</turn>\n{% endfor %}"
                + "{% if add_generation_prompt %}[assistant]{% endif %}";
        List<ChatMessage> chat = List.of(ChatMessage.user("What is apt?"), new ChatMessage("assistant", "It is "));
        assertThat(ChatTemplate.of(turns.replace(" FILTER", ""), null, null).renderContinuing(chat, Map.of()))
                .isEqualTo("[user]What is apt?</turn>\n[assistant]It is ");
        assertThat(ChatTemplate.of(turns.replace("FILTER", "| trim"), null, null).renderContinuing(chat, Map.of()))
                .isEqualTo("[user]What is apt?</turn>\n[assistant]It is");
        assertThatThrownBy(() -> ChatTemplate.of(turns.replace("FILTER", "| upper"), null, null)
                .renderContinuing(chat, Map.of()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("continue_final_message: the final message does not appear");
    }

    @Test
    void strftimeNowReadsTheClock() {
        Clock clock = Clock.fixed(Instant.parse("2024-02-29T08:30:00Z"), ZoneOffset.UTC);
        ChatTemplate template = ChatTemplate.of("Today is {{ strftime_now('%d %B %Y') }}.", null, null)
                .withClock(clock);
        assertThat(template.render(HELLO, true)).isEqualTo("Today is 29 February 2024.");
    }

    private static void writeConfig(Path folder, ObjectNode config) throws IOException {
        Files.writeString(folder.resolve("tokenizer_config.json"), JSON.writeValueAsString(config));
    }
}
