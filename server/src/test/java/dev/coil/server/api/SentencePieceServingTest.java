package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model whose tokenizer is SentencePiece-style ("▁" for a space, bytes as "&lt;0xE6&gt;", a decoder
 * that strips a text's leading space; Llama 2's and Mistral 7B's layout) served: the
 * mamba2 test model with the engine's tokenizer-sentencepiece, both of 384 ids. An answer goes on from
 * its prompt with its first token's space, in the echo, the stream and logprobs alike, and a choice
 * spelled with spaces and bytes is answered whole.
 */
class SentencePieceServingTest {

    private static final Path ENGINE_TESTS = Path.of("..", "engine", "src", "test", "resources");

    @TempDir
    static Path folder;
    private static TestServer server;
    private static int york;

    @BeforeAll
    static void start() throws Exception {
        for (String file : List.of("config.json", "model.safetensors")) {
            Files.copy(ENGINE_TESTS.resolve("fixtures/mamba2").resolve(file), folder.resolve(file));
        }
        for (String file : List.of("tokenizer.json", "tokenizer_config.json")) {
            Files.copy(ENGINE_TESTS.resolve("tokenizer-sentencepiece").resolve(file), folder.resolve(file));
        }
        server = TestServer.start(folder, ServerOptions.defaults("127.0.0.1", 0), TestServer.ENGINE_OPTIONS);
        JsonNode ids = server.postJson("/tokenize", "{\"prompt\": \"New York\", \"add_special_tokens\": false}")
                .get("tokens");
        assertThat(ids).hasSize(2);
        york = ids.get(1).asInt();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @Test
    void theAnswerGoesOnFromItsPromptWithItsFirstTokensSpace() {
        String request = "\"prompt\": \"New York\", \"max_tokens\": 2, \"temperature\": 0, \"echo\": true, "
                + "\"logprobs\": 0, \"logit_bias\": {\"" + york + "\": 100}";
        JsonNode choice = server.postJson("/v1/completions", "{" + request + "}").at("/choices/0");
        assertThat(choice.get("text").asText()).isEqualTo("New York York York");
        JsonNode logprobs = choice.get("logprobs");
        // Each token as it reads after text; the echo starts where the text does, its leading space stripped.
        assertThat(logprobs.get("tokens").toString()).isEqualTo("[\"<s>\",\" New\",\" York\",\" York\",\" York\"]");
        assertThat(logprobs.get("text_offset").toString()).isEqualTo("[0,0,3,8,13]");

        // The first word again later: the first token's offset is still the text's start.
        JsonNode again = server.postJson("/v1/completions", "{\"prompt\": \"York New York\", \"max_tokens\": 0, "
                + "\"echo\": true, \"logprobs\": 0}").at("/choices/0/logprobs");
        assertThat(again.get("tokens").toString()).isEqualTo("[\"<s>\",\" York\",\" New\",\" York\"]");
        assertThat(again.get("text_offset").toString()).isEqualTo("[0,0,4,8]");

        StringBuilder streamed = new StringBuilder();
        for (JsonNode event : TestServer.events(server.post("/v1/completions", "{" + request.replace("\"echo\": true, ",
                "") + ", \"stream\": true}").body())) {
            streamed.append(event.at("/choices/0/text").asText());
        }
        assertThat(streamed.toString()).isEqualTo(" York York");
    }

    @Test
    void aChoiceWithSpacesAndBytesIsAnsweredWhole() {
        JsonNode choice = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": "
                + "\"where?\"}], \"max_tokens\": 12, \"logprobs\": true, \"seed\": 7, "
                + "\"guided_choice\": [\"New York 日本\", \"the café\"]}").at("/choices/0");
        String answer = choice.at("/message/content").asText();
        assertThat(answer).isIn("New York 日本", "the café");
        ByteArrayOutputStream joined = new ByteArrayOutputStream();
        List<String> tokens = new ArrayList<>();
        for (JsonNode entry : choice.at("/logprobs/content")) {
            entry.get("bytes").forEach(b -> joined.write(b.asInt()));
            tokens.add(entry.get("token").asText());
        }
        assertThat(joined.toString(StandardCharsets.UTF_8)).as("tokens %s", tokens).isEqualTo(answer);
    }
}
