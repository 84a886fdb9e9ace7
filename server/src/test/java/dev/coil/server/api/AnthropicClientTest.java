package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.anthropic.client.AnthropicClient;
import com.anthropic.client.okhttp.AnthropicOkHttpClient;
import com.anthropic.core.JsonValue;
import com.anthropic.core.http.StreamResponse;
import com.anthropic.models.messages.Message;
import com.anthropic.models.messages.MessageCreateParams;
import com.anthropic.models.messages.RawMessageStreamEvent;
import com.anthropic.models.messages.StopReason;
import com.anthropic.models.messages.Tool;
import com.anthropic.models.messages.ToolChoiceTool;
import com.anthropic.models.messages.ToolUseBlock;
import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Anthropic's official Java client against a running server: every message and stream event it reads
 * passes its validation of their required fields, and what it reads agrees with the chat answer of the
 * same conversation (greedy).
 */
class AnthropicClientTest {

    private static final String PROMPT = "The Debian package manager";
    private static TestServer server;
    private static AnthropicClient client;

    @BeforeAll
    static void start() {
        server = TestServer.start();
        client = AnthropicOkHttpClient.builder().baseUrl(server.url("")).apiKey("unused")
                .timeout(Duration.ofSeconds(60)).maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
    }

    @Test
    void messagesAreTheClientsMessagesAndEvents() {
        MessageCreateParams params = MessageCreateParams.builder().model("coil-demo").maxTokens(12)
                .addUserMessage(PROMPT).putAdditionalBodyProperty("temperature", JsonValue.from(0)).build();
        Message message = client.messages().create(params).validate();
        String text = message.content().getFirst().text().orElseThrow().text();
        JsonNode chat = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \""
                + PROMPT + "\"}], \"max_tokens\": 12, \"temperature\": 0}");
        assertThat(text).isEqualTo(chat.at("/choices/0/message/content").asText()).isNotEmpty();
        assertThat(message.usage().outputTokens()).isEqualTo(chat.at("/usage/completion_tokens").asLong());
        assertThat(message.usage().inputTokens()).isEqualTo(chat.at("/usage/prompt_tokens").asLong());

        StringBuilder streamed = new StringBuilder();
        List<RawMessageStreamEvent> events = new ArrayList<>();
        try (StreamResponse<RawMessageStreamEvent> stream = client.messages().createStreaming(params)) {
            stream.stream().forEach(event -> {
                events.add(event.validate());
                event.contentBlockDelta().flatMap(delta -> delta.delta().text())
                        .ifPresent(delta -> streamed.append(delta.text()));
            });
        }
        assertThat(streamed.toString()).isEqualTo(text);
        assertThat(events.getFirst().messageStart()).isPresent();
        assertThat(events.getLast().messageStop()).isPresent();
        assertThat(events.get(events.size() - 2).messageDelta().orElseThrow().delta().stopReason())
                .isEqualTo(message.stopReason());
    }

    @Test
    void aNamedToolIsTheClientsToolUseBlock() {
        Tool tool = Tool.builder().name("set_alarm").description("Sets an alarm.")
                .inputSchema(Tool.InputSchema.builder().properties(Tool.InputSchema.Properties.builder()
                        .putAdditionalProperty("hour", JsonValue.from(Map.of("type", "integer", "minimum", 0,
                                "maximum", 23))).build()).required(List.of("hour")).build()).build();
        MessageCreateParams params = MessageCreateParams.builder().model("coil-demo").maxTokens(300)
                .addUserMessage("Wake me at seven.").addTool(tool)
                .toolChoice(ToolChoiceTool.builder().name("set_alarm").build())
                .putAdditionalBodyProperty("temperature", JsonValue.from(0)).build();
        Message message = client.messages().create(params).validate();
        ToolUseBlock use = message.content().getFirst().toolUse().orElseThrow();
        assertThat(use.name()).isEqualTo("set_alarm");
        assertThat(message.stopReason()).contains(StopReason.TOOL_USE);
        int hour = use._input().convert(Map.class).get("hour") instanceof Number number ? number.intValue() : -1;
        assertThat(hour).isBetween(0, 23);
        try (StreamResponse<RawMessageStreamEvent> stream = client.messages().createStreaming(params)) {
            assertThat(stream.stream().map(RawMessageStreamEvent::validate).toList()).isNotEmpty();
        }
    }
}
