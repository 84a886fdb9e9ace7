package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * vLLM's return_token_ids: the prompt's ids are /tokenize's, the generated ids detokenize to the text
 * and count as its usage, and a stream's ids join to the whole answer's.
 */
class TokenIdsTest {

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
    void chatGivesThePromptsIdsOnceAndEachChoicesIds() {
        String messages = "\"messages\": [{\"role\": \"user\", \"content\": \"Name a package manager.\"}]";
        String request = "{" + messages + ", \"max_tokens\": 10, \"temperature\": 0, \"return_token_ids\": true";
        JsonNode whole = server.postJson("/v1/chat/completions", request + "}");
        assertThat(whole.get("prompt_token_ids")).isEqualTo(server.postJson("/tokenize", "{" + messages + "}")
                .get("tokens"));
        JsonNode ids = whole.at("/choices/0/token_ids");
        assertThat(ids).hasSize(whole.at("/usage/completion_tokens").asInt());
        assertThat(server.postJson("/detokenize", "{\"tokens\": " + ids + "}").get("prompt").asText())
                .isEqualTo(whole.at("/choices/0/message/content").asText());

        List<JsonNode> chunks = TestServer.events(server.post("/v1/chat/completions", request + ", \"stream\": true}")
                .body());
        assertThat(chunks.getFirst().get("prompt_token_ids")).isEqualTo(whole.get("prompt_token_ids"));
        assertThat(chunks.subList(1, chunks.size())).allSatisfy(chunk -> assertThat(chunk.has("prompt_token_ids"))
                .isFalse());
        assertThat(joined(chunks)).isEqualTo(ids);

        assertThat(server.postJson("/v1/chat/completions", "{" + messages + ", \"max_tokens\": 2}").has(
                "prompt_token_ids")).as("not asked for, not given").isFalse();
    }

    @Test
    void completionsGiveEachChoiceItsPromptsIds() {
        String request = "{\"prompt\": [\"The Debian package manager\", \"apt\"], \"max_tokens\": 6, \"temperature\": 0, "
                + "\"return_token_ids\": true";
        JsonNode whole = server.postJson("/v1/completions", request + "}");
        assertThat(whole.get("choices")).hasSize(2);
        for (int i = 0; i < 2; i++) {
            JsonNode choice = whole.get("choices").get(i);
            String prompt = i == 0 ? "The Debian package manager" : "apt";
            assertThat(choice.get("prompt_token_ids")).isEqualTo(server.postJson("/tokenize", "{\"prompt\": \""
                    + prompt + "\"}").get("tokens"));
            assertThat(server.postJson("/detokenize", "{\"tokens\": " + choice.get("token_ids") + "}").get("prompt")
                    .asText()).isEqualTo(choice.get("text").asText());
        }
        List<JsonNode> chunks = TestServer.events(server.post("/v1/completions", request + ", \"stream\": true}").body());
        for (int i = 0; i < 2; i++) {
            int index = i;
            List<JsonNode> own = chunks.stream().filter(chunk -> chunk.at("/choices/0/index").asInt(-1) == index)
                    .toList();
            assertThat(own.getFirst().at("/choices/0/prompt_token_ids"))
                    .isEqualTo(whole.get("choices").get(i).get("prompt_token_ids"));
            assertThat(joined(own)).isEqualTo(whole.get("choices").get(i).get("token_ids"));
        }
    }

    /** The token_ids of a stream's chunks, joined in order. */
    private static JsonNode joined(List<JsonNode> chunks) {
        List<Integer> ids = new ArrayList<>();
        for (JsonNode chunk : chunks) {
            chunk.at("/choices/0/token_ids").forEach(id -> ids.add(id.asInt()));
        }
        return TestServer.JSON.valueToTree(ids);
    }
}
