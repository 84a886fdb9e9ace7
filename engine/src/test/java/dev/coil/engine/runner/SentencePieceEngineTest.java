package dev.coil.engine.runner;

import static dev.coil.engine.runner.EngineRuns.prompt;
import static dev.coil.engine.runner.EngineRuns.run;
import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.model.Fixtures;
import dev.coil.engine.tokenizer.SentencePieceTokenizerTest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model whose tokenizer is SentencePiece-style (Llama 2's and Mistral 7B's layout:
 * the mamba2 fixture's weights with tokenizer-sentencepiece, both of 384 ids), through the engine: held
 * to a grammar, every answer is one the grammar takes, spelled with the spaces its tokens begin with and
 * 日 in bytes; a free answer's text goes on from its prompt with its first token's space.
 */
class SentencePieceEngineTest {

    @TempDir
    static Path folder;
    private static LoadedModel model;

    @BeforeAll
    static void load() throws Exception {
        Path weights = Fixtures.folder("mamba2");
        for (String name : List.of("config.json", "model.safetensors")) {
            Files.copy(weights.resolve(name), folder.resolve(name), StandardCopyOption.REPLACE_EXISTING);
        }
        Path tokenizer = SentencePieceTokenizerTest.folder();
        for (String name : List.of("tokenizer.json", "tokenizer_config.json")) {
            Files.copy(tokenizer.resolve(name), folder.resolve(name), StandardCopyOption.REPLACE_EXISTING);
        }
        model = LoadedModel.load(folder);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @Test
    void everyOutputIsOneTheGrammarTakesWithItsTokensSpaces() {
        List<String> choices = List.of("New York", "日本", "yes the café");
        List<String> whole = StructuredOutputTest.outputs(model, OutputGrammar.choice(choices), 12, 16);
        assertThat(whole).hasSize(12).allSatisfy(text -> assertThat(text).isIn(choices));
        String regex = "(yes|New) [A-Z][a-z]{1,5}( 日本)?";
        List<String> matched = StructuredOutputTest.outputs(model, OutputGrammar.regex(regex), 12, 24);
        assertThat(matched).hasSizeGreaterThan(8).allSatisfy(text -> assertThat(text).matches(regex));
        System.out.println("[sentencepiece] whole texts: " + whole + " " + matched);
    }

    /**
     * Without a grammar, the text goes on from the prompt: a first token "▁York" (pushed by a logit bias)
     * is " York", where decoding the answer's tokens alone would drop the space; after BOS alone, "York".
     */
    @Test
    void aFreeAnswerKeepsItsFirstTokensSpace() {
        int vocab = model.config().vocabSize();
        int york = model.tokenizer().tokenId("▁York").orElseThrow();
        int newWord = model.tokenizer().tokenId("▁New").orElseThrow();
        SamplingParams params = SamplingParams.builder().maxTokens(2)
                .logitBias(Map.of(york, 100f, newWord, 50f)).build();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            EngineRuns.Outcome outcome = run(engine, new EngineRequest(prompt(vocab, 7, 3), params, false, -1, -1));
            assertThat(outcome.tokens()).containsExactly(york, york);
            assertThat(outcome.text()).isEqualTo(" York York");
            assertThat(model.tokenizer().decode(new int[] {york, york}, true)).isEqualTo("York York");
            // After BOS alone the answer starts the text, as decoding BOS and the answer does.
            int bos = model.tokenizer().tokenId("<s>").orElseThrow();
            EngineRuns.Outcome afterBos = run(engine, new EngineRequest(new int[] {bos}, params, false, -1, -1));
            assertThat(afterBos.tokens()).containsExactly(york, york);
            assertThat(afterBos.text()).isEqualTo("York York");
        }
    }
}
