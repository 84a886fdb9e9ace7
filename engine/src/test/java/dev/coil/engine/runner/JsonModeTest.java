package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.model.TestModels;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * response_format json_object through the engine, on a random model that knows nothing of JSON:
 * every output is a prefix of a JSON object, and one that ends by itself (finish STOP) is a whole
 * object Jackson reads.
 */
class JsonModeTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void everyOutputIsAJsonObjectOrTheStartOfOne() throws Exception {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        List<String> whole = new ArrayList<>();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            for (int seed = 0; seed < 24; seed++) {
                SamplingParams params = SamplingParams.builder().temperature(seed % 4 == 0 ? 0 : 1.5).seed((long) seed)
                        .maxTokens(40).jsonObject(true).build();
                EngineRuns.Outcome outcome = run(engine, new EngineRequest(prompt(vocab, 9, seed), params, false, -1, -1));
                assertThat(outcome.failed()).as("seed %d", seed).isNull();
                String text = outcome.text();
                JsonGrammar grammar = new JsonGrammar();
                assertThat(grammar.acceptAll(text)).as("seed %d: %s", seed, text).isTrue();
                if (outcome.finished().reason() == FinishReason.STOP) {
                    assertThat(grammar.complete()).as("seed %d: %s", seed, text).isTrue();
                    assertThat(JSON.readTree(text)).as("seed %d", seed).isInstanceOf(ObjectNode.class);
                    whole.add(text);
                } else {
                    assertThat(outcome.tokens()).hasSize(40);
                }
            }
        }
        System.out.println("[json] whole objects: " + whole);
        assertThat(whole).as("outputs that closed their object").isNotEmpty();
    }
}
