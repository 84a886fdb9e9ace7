package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.parallel.ContextParallelism;
import dev.coil.engine.runner.CpuBackend;
import dev.coil.server.SamplingDefaults;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * vLLM's --generation-config: with auto, a request that leaves its sampling fields out gets the values
 * of the model's generation_config.json (here temperature 0: the greedy answer, whatever the seed);
 * with vllm, the neutral ones (temperature 1: the same draw as a request that says 1 with the seed).
 */
class SamplingDefaultsTest {

    private static final String ASK = "\"prompt\": \"The Debian package manager\", \"max_tokens\": 16, \"seed\": 3";

    @TempDir
    static Path folder;

    @Test
    void leftOutFieldsTakeTheModelsGenerationConfigOrTheNeutralValues() throws IOException {
        Path model = TestServer.writeThinkingModel(folder);
        Files.writeString(model.resolve("generation_config.json"), """
                {"eos_token_id": 0, "temperature": 0.0, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.0}""");
        try (TestServer auto = TestServer.start(model, ServerOptions.defaults("127.0.0.1", 0), TestServer.ENGINE_OPTIONS)) {
            assertThat(auto.model().samplingDefaults()).isEqualTo(new SamplingDefaults(0.0, 0.9, 20, 0.0, 1.0));
            assertThat(auto.model().samplingDefaults().described()).isEqualTo("temperature 0.0, top_p 0.9, top_k 20");
            String leftOut = text(auto, "{" + ASK + "}");
            assertThat(leftOut).isEqualTo(text(auto, "{" + ASK + ", \"temperature\": 0}")).isNotEmpty();
            assertThat(text(auto, "{" + ASK.replace("3", "4") + "}")).as("greedy whatever the seed").isEqualTo(leftOut);
        }
        try (TestServer neutral = TestServer.listen(ServerOptions.defaults("127.0.0.1", 0))) {
            neutral.server().serve(ServedModel.load(model, null,
                    loaded -> new CpuBackend(loaded.model(), new CpuOps(new Parallel(1))),
                    loaded -> ContextParallelism.NONE, TestServer.ENGINE_OPTIONS, null, false));
            assertThat(neutral.model().samplingDefaults()).isEqualTo(SamplingDefaults.NEUTRAL);
            assertThat(text(neutral, "{" + ASK + "}")).isEqualTo(text(neutral, "{" + ASK + ", \"temperature\": 1, "
                    + "\"top_p\": 1, \"top_k\": 0}"));
        }
    }

    private static String text(TestServer server, String body) {
        JsonNode response = server.postJson("/v1/completions", body);
        return response.at("/choices/0/text").asText();
    }
}
