package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import java.net.http.HttpResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * /tokenize, /detokenize and /v1/models (the list and one model by its id) in vLLM's shapes,
 * consistent with what generation counts.
 */
class TokenizeTest {

    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    /**
     * vLLM's continue_final_message: the conversation's prompt ends with the last message's text, no
     * end-of-turn token after it and no new turn, and a chat completion continues it (its greedy
     * answer is the completion of that same prompt's tokens).
     */
    @Test
    void aContinuedLastMessageEndsThePrompt() {
        String messages = "\"messages\": [{\"role\": \"user\", \"content\": \"What does apt-get do?\"}, "
                + "{\"role\": \"assistant\", \"content\": \"It installs\"}]";
        JsonNode continued = server.postJson("/tokenize", "{" + messages + ", \"continue_final_message\": true}");
        String expected = "<|start_of_role|>user<|end_of_role|>What does apt-get do?<|endoftext|>\n"
                + "<|start_of_role|>assistant<|end_of_role|>It installs";
        JsonNode direct = server.postJson("/tokenize", "{\"prompt\": " + TestServer.JSON.valueToTree(expected)
                + ", \"add_special_tokens\": false}");
        assertThat(continued.get("tokens")).isEqualTo(direct.get("tokens"));

        JsonNode chat = server.postJson("/v1/chat/completions", "{" + messages + ", \"continue_final_message\": true, "
                + "\"add_generation_prompt\": false, \"max_tokens\": 6, \"temperature\": 0}");
        JsonNode completion = server.postJson("/v1/completions", "{\"prompt\": " + direct.get("tokens")
                + ", \"max_tokens\": 6, \"temperature\": 0}");
        assertThat(chat.at("/choices/0/message/content").asText()).isEqualTo(completion.at("/choices/0/text").asText());
        assertThat(chat.at("/usage/prompt_tokens").asInt()).isEqualTo(direct.get("count").asInt());

        HttpResponse<String> both = server.post("/v1/chat/completions", "{" + messages
                + ", \"continue_final_message\": true, \"add_generation_prompt\": true}");
        assertThat(both.statusCode()).isEqualTo(400);
        assertThat(TestServer.parse(both.body()).at("/error/param").asText()).isEqualTo("continue_final_message");
    }

    @Test
    void tokenizeAndDetokenizeRoundTripAndAgreeWithUsage() {
        String text = "Debian's package manager is called apt.";
        JsonNode tokenized = server.postJson("/tokenize", "{\"prompt\": \"" + text + "\", \"return_token_strs\": true}");

        assertThat(tokenized.get("count").asInt()).isEqualTo(tokenized.get("tokens").size()).isPositive();
        assertThat(tokenized.get("max_model_len").asInt()).isEqualTo(8192);
        StringBuilder joined = new StringBuilder();
        tokenized.get("token_strs").forEach(token -> joined.append(token.asText()));
        assertThat(joined.toString()).isEqualTo(text);
        assertThat(server.postJson("/detokenize", "{\"tokens\": " + tokenized.get("tokens") + "}").get("prompt").asText())
                .isEqualTo(text);
        JsonNode completion = server.postJson("/v1/completions", "{\"prompt\": \"" + text + "\", \"max_tokens\": 1}");
        assertThat(completion.at("/usage/prompt_tokens").asInt()).isEqualTo(tokenized.get("count").asInt());
        JsonNode sameAsIds = server.postJson("/v1/completions", "{\"prompt\": " + tokenized.get("tokens")
                + ", \"max_tokens\": 3, \"temperature\": 0, \"echo\": true}");
        assertThat(sameAsIds.at("/choices/0/text").asText()).startsWith(text);
    }

    @Test
    void chatTokenizationCountsWhatTheChatRequestUses() {
        String messages = "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}]";
        JsonNode tokenized = server.postJson("/tokenize", "{\"messages\": " + messages + "}");
        JsonNode chat = server.postJson("/v1/chat/completions", "{\"messages\": " + messages + ", \"max_tokens\": 1}");

        assertThat(chat.at("/usage/prompt_tokens").asInt()).isEqualTo(tokenized.get("count").asInt());
        assertThat(server.postJson("/detokenize", "{\"tokens\": " + tokenized.get("tokens") + "}").get("prompt").asText())
                .isEqualTo("<|start_of_role|>system<|end_of_role|>Be brief.<|endoftext|>\n"
                        + "<|start_of_role|>user<|end_of_role|>Hi<|endoftext|>\n<|start_of_role|>assistant<|end_of_role|>");
    }

    @Test
    void modelsListsTheServedModel() {
        JsonNode models = TestServer.parse(server.get("/v1/models").body());
        assertThat(models.get("object").asText()).isEqualTo("list");
        JsonNode model = models.get("data").get(0);
        assertThat(model.get("id").asText()).isEqualTo("coil-demo");
        assertThat(model.get("object").asText()).isEqualTo("model");
        assertThat(model.get("owned_by").asText()).isEqualTo("coil");
        assertThat(model.get("max_model_len").asInt()).isEqualTo(8192);
        assertThat(model.get("created").asLong()).isPositive();
    }

    /**
     * vLLM's --max-model-len (the engine's maxModelLength): the served window is reported as
     * max_model_len, and requests past it get a 400 naming max_tokens; a chat request without
     * max_tokens generates what the window leaves.
     */
    @Test
    void aShorterServedWindowIsReportedAndHeld() {
        try (TestServer short64 = TestServer.start(dev.coil.server.ServerOptions.defaults("127.0.0.1", 0),
                TestServer.ENGINE_OPTIONS.withMaxModelLength(64))) {
            JsonNode model = TestServer.parse(short64.get("/v1/models").body()).get("data").get(0);
            assertThat(model.get("max_model_len").asInt()).isEqualTo(64);
            JsonNode tokenized = short64.postJson("/tokenize", "{\"prompt\": \"apt\"}");
            assertThat(tokenized.get("max_model_len").asInt()).isEqualTo(64);
            int prompt = tokenized.get("count").asInt();
            short64.assertRefused("/v1/completions", "{\"prompt\": \"apt\", \"max_tokens\": " + (65 - prompt) + "}",
                    "max_tokens", "served context window (--max-model-len) of 64 tokens");
            // A chat answer without max_tokens: what the window leaves.
            JsonNode rest = short64.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", "
                    + "\"content\": \"apt\"}], \"ignore_eos\": true}");
            assertThat(rest.at("/usage/completion_tokens").asInt())
                    .isEqualTo(64 - rest.at("/usage/prompt_tokens").asInt());
            assertThat(rest.at("/choices/0/finish_reason").asText()).isEqualTo("length");
        }
    }

    @Test
    void theServedModelIsRetrievedByItsIdAndAnyOtherIdIsNotFound() {
        HttpResponse<String> found = server.get("/v1/models/coil-demo");
        assertThat(found.statusCode()).isEqualTo(200);
        assertThat(TestServer.parse(found.body())).isEqualTo(TestServer.parse(server.get("/v1/models").body())
                .get("data").get(0));

        for (String id : new String[] {"gpt-4o", "org/coil-demo"}) {
            HttpResponse<String> missing = server.get("/v1/models/" + id);
            assertThat(missing.statusCode()).as(id).isEqualTo(404);
            JsonNode error = TestServer.parse(missing.body()).get("error");
            assertThat(error.get("code").asText()).isEqualTo("model_not_found");
            assertThat(error.get("type").asText()).isEqualTo("invalid_request_error");
            assertThat(error.get("message").asText()).contains(id);
        }
    }

    @Test
    void echoWithoutNewTokensScoresThePrompt() {
        JsonNode scored = server.postJson("/v1/completions",
                "{\"prompt\": \"The quick brown fox\", \"max_tokens\": 0, \"echo\": true, \"logprobs\": 2}");
        JsonNode choice = scored.at("/choices/0");
        JsonNode logprobs = choice.get("logprobs");
        int count = server.postJson("/tokenize", "{\"prompt\": \"The quick brown fox\"}").get("count").asInt();

        assertThat(choice.get("text").asText()).isEqualTo("The quick brown fox");
        assertThat(choice.get("finish_reason").asText()).isEqualTo("length");
        assertThat(logprobs.get("tokens")).hasSize(count);
        assertThat(logprobs.get("token_logprobs").get(0).isNull()).isTrue();
        assertThat(logprobs.get("top_logprobs").get(0).isNull()).isTrue();
        for (int i = 1; i < count; i++) {
            double logprob = logprobs.get("token_logprobs").get(i).asDouble();
            assertThat(logprob).isNegative();
            // The alternatives hold the two most likely tokens and the prompt's own token.
            JsonNode top = logprobs.get("top_logprobs").get(i);
            assertThat(top.size()).isBetween(2, 3);
            assertThat(top.get(logprobs.get("tokens").get(i).asText()).asDouble()).isEqualTo(logprob);
        }
        assertThat(scored.at("/usage/completion_tokens").asInt()).isZero();
    }
}
