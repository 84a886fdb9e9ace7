package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * vLLM's prompt_logprobs on the demo model: null for the first prompt token, then each prompt token
 * keyed by id with its logprob, its rank and its text, beside the most likely tokens ranked 1, 2, ...;
 * the same logprobs as completions' echo scoring gives; on each completions choice, on the chat
 * response; refused with stream or past 20.
 */
class PromptLogprobsTest {

    private static final String PROMPT = "The Debian package manager installs";

    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @Test
    void completionsChoicesCarryEachPromptTokensLogprobAndRank() {
        JsonNode scored = server.postJson("/v1/completions", "{\"prompt\": \"" + PROMPT + "\", \"max_tokens\": 0, "
                + "\"echo\": true, \"logprobs\": 3}").at("/choices/0");
        JsonNode response = server.postJson("/v1/completions", "{\"prompt\": \"" + PROMPT + "\", \"max_tokens\": 2, "
                + "\"temperature\": 0, \"n\": 2, \"prompt_logprobs\": 3}");
        int promptTokens = response.at("/usage/prompt_tokens").asInt();
        for (JsonNode choice : response.get("choices")) {
            JsonNode prompt = choice.get("prompt_logprobs");
            assertThat(prompt).as(choice.toString()).hasSize(promptTokens);
            assertThat(prompt.get(0).isNull()).isTrue();
            assertThat(choice.get("logprobs").isNull()).as("only what was asked").isTrue();
            for (int i = 1; i < promptTokens; i++) {
                assertRanked(prompt.get(i), scored.at("/logprobs/tokens").get(i).asText(),
                        scored.at("/logprobs/token_logprobs").get(i).asDouble(), 3, "position " + i);
            }
        }
        // Echo with logprobs asks for them too, as many as logprobs (vLLM's rule).
        JsonNode echoed = server.postJson("/v1/completions", "{\"prompt\": \"" + PROMPT + "\", \"max_tokens\": 0, "
                + "\"echo\": true, \"logprobs\": 1}").at("/choices/0");
        assertThat(echoed.get("prompt_logprobs")).hasSize(promptTokens);
        assertThat(echoed.at("/logprobs/top_logprobs/1").size()).isLessThanOrEqualTo(2);
        // prompt_logprobs past logprobs: the echo's top lists keep logprobs' length.
        JsonNode wider = server.postJson("/v1/completions", "{\"prompt\": \"" + PROMPT + "\", \"max_tokens\": 0, "
                + "\"echo\": true, \"logprobs\": 1, \"prompt_logprobs\": 4}").at("/choices/0");
        for (int i = 1; i < promptTokens; i++) {
            JsonNode top = wider.at("/logprobs/top_logprobs").get(i);
            assertThat(top.size()).as("echo's top at %d: %s", i, top).isBetween(1, 2);
            assertRanked(wider.get("prompt_logprobs").get(i), scored.at("/logprobs/tokens").get(i).asText(),
                    scored.at("/logprobs/token_logprobs").get(i).asDouble(), 4, "wider, position " + i);
        }
        assertThat(server.postJson("/v1/completions", "{\"prompt\": \"" + PROMPT + "\", \"max_tokens\": 1}")
                .at("/choices/0").has("prompt_logprobs")).as("not asked").isFalse();
    }

    @Test
    void chatResponsesCarryThePromptsLogprobs() {
        String messages = "\"messages\": [{\"role\": \"user\", \"content\": \"" + PROMPT + "\"}]";
        JsonNode response = server.postJson("/v1/chat/completions", "{" + messages + ", \"max_tokens\": 2, \"n\": 2, "
                + "\"prompt_logprobs\": 0}");
        JsonNode prompt = response.get("prompt_logprobs");
        assertThat(prompt).as(response.toString()).hasSize(response.at("/usage/prompt_tokens").asInt());
        assertThat(prompt.get(0).isNull()).isTrue();
        for (int i = 1; i < prompt.size(); i++) {
            assertThat(prompt.get(i)).as("position %d: the prompt token alone", i).hasSize(1);
            JsonNode token = prompt.get(i).elements().next();
            assertThat(token.get("rank").asInt()).isPositive();
            assertThat(token.get("logprob").asDouble()).isNegative();
        }
        assertThat(response.get("choices").get(1).has("prompt_logprobs")).isFalse();
        assertThat(server.postJson("/v1/chat/completions", "{" + messages + ", \"max_tokens\": 1}")
                .has("prompt_logprobs")).isFalse();
    }

    @Test
    void promptLogprobsWithStreamOrPastTwentyAreRefused() {
        server.assertRefused("/v1/completions", "{\"prompt\": \"x\", \"prompt_logprobs\": 1, \"stream\": true}",
                "prompt_logprobs", "stream");
        server.assertRefused("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
                + "\"prompt_logprobs\": 21}", "prompt_logprobs", "20");
        server.assertRefused("/v1/completions", "{\"prompt\": \"x\", \"prompt_logprobs\": -1}", "prompt_logprobs", "0");
    }

    /**
     * One position of prompt_logprobs: the prompt token first, with the echo's logprob and text, and
     * a rank that the listed alternatives agree with; then at most {@code most} alternatives ranked
     * 1, 2, ... in decreasing logprob.
     */
    private static void assertRanked(JsonNode position, String text, double logprob, int most, String what) {
        Iterator<Map.Entry<String, JsonNode>> entries = position.properties().iterator();
        Map.Entry<String, JsonNode> first = entries.next();
        JsonNode token = first.getValue();
        assertThat(token.get("decoded_token").asText()).as(what).isEqualTo(text);
        assertThat(token.get("logprob").asDouble()).as(what).isCloseTo(logprob, within(1e-5));
        int rank = token.get("rank").asInt();
        assertThat(rank).as(what).isPositive();
        List<JsonNode> alternatives = new ArrayList<>();
        entries.forEachRemaining(entry -> alternatives.add(entry.getValue()));
        assertThat(alternatives.size()).as(what).isBetween(most - 1, most);
        double previous = Double.POSITIVE_INFINITY;
        for (JsonNode alternative : alternatives) {
            int place = alternative.get("rank").asInt();
            double value = alternative.get("logprob").asDouble();
            assertThat(value).as(what).isLessThanOrEqualTo(previous);
            previous = value;
            // Ranked above the prompt token exactly when more likely than it.
            assertThat(place < rank).as("%s: alternative ranked %d, token ranked %d", what, place, rank)
                    .isEqualTo(value > logprob);
        }
        if (alternatives.size() == most - 1) {
            assertThat(rank).as("%s: the prompt token is among the top %d", what, most).isLessThanOrEqualTo(most);
        } else {
            assertThat(rank).as("%s: the prompt token is past the top %d", what, most).isGreaterThan(most);
        }
    }
}
