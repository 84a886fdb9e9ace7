package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * vLLM's cache_salt: a prompt is served from the prefix cache only after a request of the same salt
 * (or, without one, an unsalted request) computed it; the answer does not change.
 */
class CacheSaltTest {

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
    void onlyTheSameSaltSharesCachedPrefixes() {
        // Past 256 tokens, where the Mamba state is snapshotted mid-prompt (16 blocks of 16), so a prefix can be reused.
        String prompt = "Debian's package manager, apt, installs packages and their dependencies. ".repeat(25);
        JsonNode first = complete(prompt, "tenant-a");
        assertThat(cached(first)).isZero();
        JsonNode same = complete(prompt, "tenant-a");
        assertThat(cached(same)).as("the same salt").isPositive();
        assertThat(cached(complete(prompt, "tenant-b"))).as("another salt").isZero();
        assertThat(cached(complete(prompt, null))).as("no salt").isZero();
        assertThat(cached(complete(prompt, null))).as("no salt, a second time").isPositive();
        assertThat(same.at("/choices/0/text").asText()).isEqualTo(first.at("/choices/0/text").asText());

        server.assertRefused("/v1/completions", "{\"prompt\": \"x\", \"cache_salt\": \"\"}", "cache_salt", "non-empty");
        server.assertRefused("/v1/completions", "{\"prompt\": \"x\", \"cache_salt\": 3}", "cache_salt", "cache_salt");
    }

    private static JsonNode complete(String prompt, String salt) {
        return server.postJson("/v1/completions", "{\"prompt\": " + TestServer.JSON.valueToTree(prompt)
                + ", \"max_tokens\": 3, \"temperature\": 0" + (salt == null ? "" : ", \"cache_salt\": \"" + salt + "\"")
                + "}");
    }

    private static int cached(JsonNode response) {
        return response.at("/usage/prompt_tokens_details/cached_tokens").asInt();
    }
}
