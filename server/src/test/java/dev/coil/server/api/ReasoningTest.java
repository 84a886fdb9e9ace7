package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * --reasoning-parser on the demo model, whose chat template is changed to open a {@code <think>} block
 * after the assistant's header unless {@code enable_thinking} is false (as Qwen 3's and Nemotron Nano
 * 2's do). A chat answer split into reasoning and content loses nothing: what it holds is the
 * completion of the same prompt tokens, streamed or not; with the block open, a grammar holds only
 * what follows its end tag; no open block leaves the answer whole as content.
 */
class ReasoningTest {

    private static final String ASK = "\"messages\": [{\"role\": \"user\", \"content\": \"Which is larger, 9.11 or 9.8?\"}], "
            + "\"temperature\": 0, \"max_tokens\": 24";

    @TempDir
    static Path folder;
    private static TestServer server;

    @BeforeAll
    static void start() throws IOException {
        TestServer.writeThinkingModel(folder);
        server = TestServer.start(folder, ServerOptions.defaults("127.0.0.1", 0)
                .withReasoningParser(ReasoningFormat.THINK).withToolCallParser(ToolCallFormat.HERMES),
                TestServer.ENGINE_OPTIONS);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @Test
    void anAnswerInsideTheOpenBlockIsReasoningStreamedOrNot() {
        String completion = completionOfTheSamePrompt("{" + ASK + "}");
        JsonNode message = server.postJson("/v1/chat/completions", "{" + ASK + "}").at("/choices/0/message");
        assertThat(completion).isNotEmpty().doesNotContain("</think>");
        assertThat(message.get("reasoning").asText()).isEqualTo(completion);
        assertThat(message.get("reasoning_content").asText()).isEqualTo(completion);
        assertThat(message.get("content").isNull()).as(message.toString()).isTrue();

        StringBuilder reasoning = new StringBuilder();
        StringBuilder reasoningContent = new StringBuilder();
        for (JsonNode chunk : TestServer.events(server.post("/v1/chat/completions",
                "{" + ASK + ", \"stream\": true}").body())) {
            JsonNode delta = chunk.at("/choices/0/delta");
            assertThat(delta.path("content").asText("")).as(chunk.toString()).isEmpty();
            reasoning.append(delta.path("reasoning").asText(""));
            reasoningContent.append(delta.path("reasoning_content").asText(""));
        }
        assertThat(reasoning.toString()).isEqualTo(completion);
        assertThat(reasoningContent.toString()).isEqualTo(completion);
    }

    /** The Responses API splits the reasoning into a reasoning item, whole and streamed, as chat splits it. */
    @Test
    void responsesPutTheReasoningInItsOwnItem() {
        String input = "\"input\": \"Which is larger, 9.11 or 9.8?\", \"temperature\": 0, \"max_output_tokens\": 24";
        JsonNode message = server.postJson("/v1/chat/completions", "{" + ASK + "}").at("/choices/0/message");
        JsonNode response = server.postJson("/v1/responses", "{" + input + "}");
        JsonNode reasoning = response.at("/output/0");
        assertThat(reasoning.get("type").asText()).as(response.toString()).isEqualTo("reasoning");
        assertThat(reasoning.at("/content/0/text").asText()).isEqualTo(message.get("reasoning_content").asText())
                .isNotEmpty();

        StringBuilder streamed = new StringBuilder();
        List<JsonNode> events = ResponsesTest.events(server.post("/v1/responses", "{" + input + ", \"stream\": true}")
                .body());
        for (JsonNode event : events) {
            if (event.get("type").asText().equals("response.reasoning_text.delta")) {
                streamed.append(event.get("delta").asText());
            }
        }
        assertThat(streamed.toString()).isEqualTo(reasoning.at("/content/0/text").asText());
        assertThat(events.getLast().at("/response/output/0/type").asText()).isEqualTo("reasoning");
    }

    /**
     * The Messages API's thinking and the Responses API's reasoning effort "none" reach the template as
     * enable_thinking: disabled, the answer is the chat answer with thinking off (no reasoning block);
     * enabled, its reasoning is chat's; chat_template_kwargs given in the request win.
     */
    @Test
    void thinkingAndReasoningEffortReachTheTemplate() {
        String user = "[{\"role\": \"user\", \"content\": \"Which is larger, 9.11 or 9.8?\"}]";
        JsonNode off = server.postJson("/v1/chat/completions", "{\"messages\": " + user + ", \"max_tokens\": 12, "
                + "\"temperature\": 0, \"chat_template_kwargs\": {\"enable_thinking\": false}}").at("/choices/0/message");
        JsonNode on = server.postJson("/v1/chat/completions", "{\"messages\": " + user + ", \"max_tokens\": 12, "
                + "\"temperature\": 0}").at("/choices/0/message");

        JsonNode disabled = server.postJson("/v1/messages", "{\"messages\": " + user + ", \"max_tokens\": 12, "
                + "\"temperature\": 0, \"thinking\": {\"type\": \"disabled\"}}");
        assertThat(disabled.get("content")).hasSize(1);
        assertThat(disabled.at("/content/0/type").asText()).isEqualTo("text");
        assertThat(disabled.at("/content/0/text").asText()).isEqualTo(off.get("content").asText());
        JsonNode enabled = server.postJson("/v1/messages", "{\"messages\": " + user + ", \"max_tokens\": 12, "
                + "\"temperature\": 0, \"thinking\": {\"type\": \"enabled\", \"budget_tokens\": 1024}}");
        assertThat(enabled.at("/content/0/type").asText()).isEqualTo("thinking");
        assertThat(enabled.at("/content/0/thinking").asText()).isEqualTo(on.get("reasoning").asText());
        JsonNode overridden = server.postJson("/v1/messages", "{\"messages\": " + user + ", \"max_tokens\": 12, "
                + "\"temperature\": 0, \"thinking\": {\"type\": \"disabled\"}, "
                + "\"chat_template_kwargs\": {\"enable_thinking\": true}}");
        assertThat(overridden.at("/content/0/type").asText()).isEqualTo("thinking");
        var refused = server.post("/v1/messages", "{\"messages\": " + user + ", \"max_tokens\": 4, \"thinking\": "
                + "{\"type\": \"maybe\"}}");
        assertThat(refused.statusCode()).isEqualTo(400);
        assertThat(TestServer.parse(refused.body()).at("/error/message").asText()).contains("thinking.type must be");

        JsonNode none = server.postJson("/v1/responses", "{\"input\": " + user + ", \"max_output_tokens\": 12, "
                + "\"temperature\": 0, \"reasoning\": {\"effort\": \"none\"}}");
        assertThat(none.get("output")).hasSize(1);
        assertThat(none.at("/output/0/type").asText()).isEqualTo("message");
        assertThat(none.at("/output/0/content/0/text").asText()).isEqualTo(off.get("content").asText());
        JsonNode low = server.postJson("/v1/responses", "{\"input\": " + user + ", \"max_output_tokens\": 12, "
                + "\"temperature\": 0, \"reasoning\": {\"effort\": \"low\"}}");
        assertThat(low.at("/output/0/type").asText()).isEqualTo("reasoning");
    }

    @Test
    void withoutAnOpenBlockTheAnswerIsContentAndAGrammarHoldsItFromItsStart() {
        String off = "{" + ASK + ", \"chat_template_kwargs\": {\"enable_thinking\": false}}";
        JsonNode message = server.postJson("/v1/chat/completions", off).at("/choices/0/message");
        assertThat(message.get("content").asText()).isEqualTo(completionOfTheSamePrompt(off)).isNotEmpty();
        assertThat(message.has("reasoning")).isFalse();

        String held = "{" + ASK + ", \"chat_template_kwargs\": {\"enable_thinking\": false}, "
                + "\"structured_outputs\": {\"regex\": \"[a-z]{3,12}\"}}";
        JsonNode heldMessage = server.postJson("/v1/chat/completions", held).at("/choices/0/message");
        assertThat(heldMessage.get("content").asText()).matches("[a-z]{3,12}");
        assertThat(heldMessage.has("reasoning")).isFalse();
    }

    /**
     * With the block open, a grammar waits for its end tag (vLLM's structured outputs with a reasoning
     * parser): the reasoning runs free, so it is the plain completion's as long as that writes no end
     * tag, streamed or not, and there is no content yet.
     */
    @Test
    void aGrammarLeavesTheReasoningFreeAndHoldsTheAnswerAfterIt() {
        String completion = completionOfTheSamePrompt("{" + ASK + "}");
        assertThat(completion).doesNotContain("</think>");
        for (String format : List.of("\"structured_outputs\": {\"regex\": \"[a-z]{3,12}\"}",
                "\"response_format\": {\"type\": \"json_object\"}")) {
            String held = "{" + ASK + ", " + format + "}";
            JsonNode choice = server.postJson("/v1/chat/completions", held).at("/choices/0");
            assertThat(choice.at("/message/reasoning").asText()).as(format).isEqualTo(completion);
            assertThat(choice.at("/message/content").isNull()).as(choice.toString()).isTrue();
            assertThat(choice.get("finish_reason").asText()).isEqualTo("length");

            StringBuilder reasoning = new StringBuilder();
            for (JsonNode chunk : TestServer.events(server.post("/v1/chat/completions",
                    "{" + ASK + ", " + format + ", \"stream\": true}").body())) {
                assertThat(chunk.at("/choices/0/delta/content").asText("")).as(chunk.toString()).isEmpty();
                reasoning.append(chunk.at("/choices/0/delta/reasoning").asText(""));
            }
            assertThat(reasoning.toString()).as(format).isEqualTo(completion);
        }
    }

    /**
     * A grammar holds the whole answer, so a block it writes stays in the content; calls are still read.
     * (Reasoning split off before calls are read: ReadChatShapeTest.)
     */
    @Test
    void underAGrammarABlockStaysContentAndCallsAreRead() {
        ObjectNode request = (ObjectNode) TestServer.parse("{" + ASK.replace("24", "300") + ", " + ToolCallsTest.TOOLS
                + ", \"chat_template_kwargs\": {\"enable_thinking\": false}}");
        request.putObject("structured_outputs").put("regex", "<think>[a-z ]{4,20}</think>\n" + ToolCallsTest.TWO_CALLS);
        JsonNode choice = server.postJson("/v1/chat/completions", request.toString()).at("/choices/0");
        assertThat(choice.at("/message").has("reasoning")).isFalse();
        assertThat(choice.at("/message/content").asText()).startsWith("<think>").endsWith("Checking.");
        assertThat(choice.at("/message/tool_calls")).hasSize(2);
        assertThat(choice.get("finish_reason").asText()).isEqualTo("tool_calls");
    }

    /** The completion of the tokens {@code chat} renders to, greedy, as many tokens: the raw answer. */
    /**
     * thinking_token_budget: with the block open, six tokens of reasoning, then the end tag's tokens,
     * then the answer as content; the reasoning is the free answer's first six tokens. The Messages
     * API's thinking.budget_tokens is the same budget, and the Responses and completions APIs take the
     * field as chat does (a completion of the chat's prompt tokens gives the same tokens). A server
     * without a reasoning parser refuses it.
     */
    @Test
    void aThinkingBudgetEndsTheReasoningAfterItsTokens() {
        String ask = ASK.replace("\"max_tokens\": 24", "\"max_tokens\": 30") + ", \"return_token_ids\": true";
        JsonNode free = server.postJson("/v1/chat/completions", "{" + ask + "}").at("/choices/0");
        JsonNode budgeted = server.postJson("/v1/chat/completions", "{" + ask + ", \"thinking_token_budget\": 6}")
                .at("/choices/0");
        List<Integer> end = ints(server.postJson("/tokenize", "{\"prompt\": \"</think>\", \"add_special_tokens\": false}")
                .get("tokens"));
        List<Integer> tokens = ints(budgeted.get("token_ids"));
        int forcedAt = java.util.Collections.indexOfSubList(tokens, end);
        assertThat(forcedAt).as(budgeted.toString()).isBetween(6, 9);
        assertThat(tokens.subList(0, forcedAt)).isEqualTo(ints(free.get("token_ids")).subList(0, forcedAt));
        JsonNode message = budgeted.get("message");
        assertThat(message.get("reasoning").asText()).as(message.toString()).isNotEmpty()
                .isEqualTo(server.postJson("/detokenize", "{\"tokens\": " + tokens.subList(0, forcedAt) + "}")
                        .get("prompt").asText());
        assertThat(message.get("content").isNull()).as(message.toString()).isFalse();
        assertThat(free.at("/message/content").isNull()).as("the free answer reasons throughout").isTrue();

        JsonNode messages = server.postJson("/v1/messages", "{\"max_tokens\": 30, \"thinking\": {\"type\": \"enabled\", "
                + "\"budget_tokens\": 6}, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": "
                + "\"Which is larger, 9.11 or 9.8?\"}]}");
        assertThat(messages.at("/content/0/type").asText()).as(messages.toString()).isEqualTo("thinking");
        assertThat(messages.at("/content/0/thinking").asText()).isEqualTo(message.get("reasoning").asText());
        assertThat(messages.at("/content/1/type").asText()).as(messages.toString()).isEqualTo("text");
        // The Responses API passes vLLM's fields on to the chat request it stands for.
        JsonNode response = server.postJson("/v1/responses", "{\"input\": \"Which is larger, 9.11 or 9.8?\", "
                + "\"temperature\": 0, \"max_output_tokens\": 30, \"thinking_token_budget\": 6}");
        assertThat(response.at("/output/0/content/0/text").asText()).as(response.toString())
                .isEqualTo(message.get("reasoning").asText());
        assertThat(response.at("/output/1/type").asText()).isEqualTo("message");

        // A completion of the chat's prompt tokens, which open the block, is cut there too.
        ObjectNode completion = Json.object().put("temperature", 0).put("max_tokens", 30).put("return_token_ids", true)
                .put("thinking_token_budget", 6);
        completion.set("prompt", server.postJson("/tokenize", "{" + ASK + "}").get("tokens"));
        JsonNode completed = server.postJson("/v1/completions", completion.toString()).at("/choices/0");
        assertThat(ints(completed.get("token_ids"))).isEqualTo(tokens);
        assertThat(completed.get("text").asText()).startsWith(message.get("reasoning").asText() + "</think>");
        server.assertRefused("/v1/chat/completions", "{" + ask + ", \"thinking_token_budget\": -1}",
                "thinking_token_budget", "thinking_token_budget");
        HttpResponse<String> refused = server.post("/v1/messages", "{\"max_tokens\": 30, \"thinking\": {\"type\": "
                + "\"enabled\", \"budget_tokens\": 1.5}, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
        assertThat(refused.statusCode()).isEqualTo(400);
        assertThat(TestServer.parse(refused.body()).at("/error/message").asText())
                .contains("thinking.budget_tokens must be an integer >= 0");
    }

    private static List<Integer> ints(JsonNode array) {
        List<Integer> values = new java.util.ArrayList<>();
        array.forEach(value -> values.add(value.asInt()));
        return values;
    }

    private static String completionOfTheSamePrompt(String chat) {
        ObjectNode tokenize = (ObjectNode) TestServer.parse(chat);
        JsonNode ids = server.postJson("/tokenize", tokenize.toString()).get("tokens");
        ObjectNode completion = Json.object().put("temperature", 0).put("max_tokens", 24);
        completion.set("prompt", ids);
        return server.postJson("/v1/completions", completion.toString()).at("/choices/0/text").asText();
    }
}
