package dev.coil.engine.demo;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.load.WeightStorage;
import dev.coil.engine.model.Phase;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.runner.Generation;
import dev.coil.engine.runner.Generator;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.tokenizer.ChatMessage;
import dev.coil.engine.tokenizer.ChatTemplate;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bundled demo model (models/coil-demo, bf16) against what transformers 5.17 generated from
 * the same files in f32 (greedy_reference.json): the same prompt ids from the tokenizer and the
 * chat template, and the same greedy tokens.
 */
class DemoModelTest {

    static final Path FOLDER = Path.of("..", "models", "coil-demo");

    private static LoadedModel model;
    private static JsonNode reference;

    @BeforeAll
    static void load() throws IOException {
        assertThat(FOLDER.resolve("config.json")).as("the bundled demo model").exists();
        model = LoadedModel.load(FOLDER);
        reference = new ObjectMapper().readTree(Files.readString(FOLDER.resolve("greedy_reference.json")));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static int[] ints(JsonNode array) {
        return java.util.stream.StreamSupport.stream(array.spliterator(), false).mapToInt(JsonNode::asInt).toArray();
    }

    @Test
    void chatTemplateRendersTheReferencePrompt() throws IOException {
        JsonNode chat = null;
        for (JsonNode item : reference.get("cases")) {
            if (item.get("chat_template").asBoolean()) {
                chat = item;
            }
        }
        assertThat(chat).as("a chat case in greedy_reference.json").isNotNull();
        String rendered = ChatTemplate.load(FOLDER).render(List.of(ChatMessage.user("What does printf do?")), true);
        assertThat(rendered).isEqualTo(chat.get("prompt").asText());
    }

    @Test
    void greedyTokensEqualTransformers() {
        greedyTokensEqualTransformers(model);
    }

    /**
     * The weights copied into memory (what the CPU serves from by default) are the file's bytes: the
     * same greedy tokens as transformers, and every logit of a prompt equal, bit for bit, to the
     * mapped weights' — also after the file on disk is gone.
     */
    @Test
    void weightsInMemoryGiveTheMappedWeightsLogits(@TempDir Path copy) throws IOException {
        for (Path file : Files.list(FOLDER).toList()) {
            Files.copy(file, copy.resolve(file.getFileName()));
        }
        try (LoadedModel inMemory = LoadedModel.load(copy, WeightStorage.MEMORY)) {
            Files.delete(copy.resolve("model.safetensors"));
            greedyTokensEqualTransformers(inMemory);
            int[] prompt = model.encode(reference.get("cases").get(0).get("prompt").asText());
            SequenceState mappedSequence = model.model().newSequence();
            SequenceState memorySequence = inMemory.model().newSequence();
            CpuOps ops = new CpuOps(new Parallel(2));
            float[] mapped = model.model().forward(ops, mappedSequence, prompt, Phase.PREFILL, true);
            float[] memory = inMemory.model().forward(ops, memorySequence, prompt, Phase.PREFILL, true);
            assertThat(memory).hasSize(prompt.length * model.config().vocabSize()).containsExactly(mapped);
        }
    }

    private static void greedyTokensEqualTransformers(LoadedModel model) {
        Generator generator = new Generator(model, new CpuOps(new Parallel(2)));
        int eos = model.endOfSequenceIds().iterator().next();
        assertThat(reference.get("cases")).hasSizeGreaterThanOrEqualTo(4);
        for (JsonNode item : reference.get("cases")) {
            int[] prompt = model.encode(item.get("prompt").asText());
            assertThat(prompt).as(item.get("name") + ": prompt ids").containsExactly(ints(item.get("prompt_ids")));

            int[] expected = ints(item.get("generated_ids"));
            boolean stoppedAtEnd = item.get("stopped_at_eos").asBoolean();
            Generation generation = generator.generate(prompt, SamplingParams.greedy().withMaxTokens(24), delta -> { });
            int[] actual = stoppedAtEnd ? append(generation.tokenIds(), eos) : generation.tokenIds();
            assertThat(actual).as(item.get("name") + ": greedy tokens").containsExactly(expected);
            String expectedText = item.get("generated_text").asText().replace("<|endoftext|>", "");
            assertThat(generation.text()).as(item.get("name") + ": text").isEqualTo(expectedText);
        }
    }

    private static int[] append(int[] values, int last) {
        int[] out = Arrays.copyOf(values, values.length + 1);
        out[values.length] = last;
        return out;
    }
}
