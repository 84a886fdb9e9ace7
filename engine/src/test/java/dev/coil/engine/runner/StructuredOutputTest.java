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
 * Requests held to a grammar through the engine, on a random model that knows nothing of JSON: every
 * output is a prefix of a sentence of the grammar, and one that ends by itself (finish STOP) is whole:
 * a JSON object Jackson reads, a value the schema validator accepts, one of the choices, a text
 * java.util.regex matches whole.
 */
class StructuredOutputTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Tight bounds, so that a random model's outputs close within the token budget. */
    static final String RECORD = """
            {"type": "object",
             "properties": {
               "name": {"type": "string", "maxLength": 4},
               "age": {"type": "integer"},
               "role": {"enum": ["admin", "user"]},
               "scores": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}},
             "required": ["name", "age", "role"]}""";

    @Test
    void everyOutputIsAJsonObjectOrTheStartOfOne() throws Exception {
        List<String> whole = outputs(OutputGrammar.jsonObject(), 24, 40);
        for (String text : whole) {
            assertThat(JSON.readTree(text)).as(text).isInstanceOf(ObjectNode.class);
        }
        System.out.println("[json] whole objects: " + whole);
        assertThat(whole).as("outputs that closed their object").isNotEmpty();
    }

    @Test
    void everyOutputIsValidForTheSchemaOrTheStartOfAValidOne() throws Exception {
        List<String> whole = outputs(OutputGrammar.jsonSchema(RECORD), 16, 60);
        for (String text : whole) {
            assertThat(SchemaOracle.errors(RECORD, text)).as(text).isEmpty();
        }
        System.out.println("[json_schema] whole values: " + whole);
        assertThat(whole).as("outputs that closed their object").hasSizeGreaterThan(4);
    }

    @Test
    void everyOutputIsOneOfTheChoices() throws Exception {
        List<String> choices = List.of("yes", "no", "no way, José", "maybe");
        List<String> whole = outputs(OutputGrammar.choice(choices), 12, 30);
        assertThat(whole).hasSize(12).allSatisfy(text -> assertThat(choices).contains(text));
    }

    @Test
    void everyOutputIsASentenceOfTheGrammarOrStartsOne() {
        OutputGrammar grammar = OutputGrammar.grammar("""
                root ::= item ("," item){0,2}
                item ::= "(" item ")" | [a-c]{1,3}
                """);
        List<String> whole = outputs(grammar, 12, 30);
        // One level of parentheses is as far as a regex can check; deeper ones are counted by hand.
        for (String text : whole) {
            String flat = text;
            while (flat.matches(".*\\([a-c]{1,3}\\).*")) {
                flat = flat.replaceAll("\\(([a-c]{1,3})\\)", "$1");
            }
            assertThat(flat).as(text).matches("[a-c]{1,3}(,[a-c]{1,3}){0,2}");
        }
        System.out.println("[grammar] whole texts: " + whole);
        assertThat(whole).as("outputs that ended by themselves").hasSizeGreaterThan(4);
    }

    @Test
    void everyOutputMatchesTheRegexWholeOrStartsAMatch() {
        String regex = "(yes|no)-[a-f0-9]{2,5}!?";
        List<String> whole = outputs(OutputGrammar.regex(regex), 12, 30);
        assertThat(whole).hasSizeGreaterThan(8).allSatisfy(text -> assertThat(text).matches(regex));
        System.out.println("[regex] whole texts: " + whole);
    }

    /**
     * Free text first (OutputGrammar.after): each output runs free up to its first "e", which the
     * random model soon writes, and is held to the regex after it; one that ended by itself is the
     * free text, the "e", at most four whitespace characters and a whole match.
     */
    @Test
    void afterItsEndTagEveryOutputMatchesTheRegex() {
        String regex = "(yes|no)-[a-f0-9]{2,5}!?";
        List<String> whole = outputs(OutputGrammar.regex(regex).after("e"), 12, 40);
        assertThat(whole).hasSizeGreaterThan(6).allSatisfy(text -> {
            int end = text.indexOf('e');
            assertThat(end).as(text).isNotNegative();
            assertThat(text.substring(end + 1)).as(text).matches("\\s{0,4}" + regex);
        });
        assertThat(whole).as("outputs with free text before the tag").anySatisfy(text -> assertThat(text.indexOf('e'))
                .isPositive());
        System.out.println("[after] whole texts: " + whole);
    }

    /**
     * A grammar that asks for characters the vocabulary holds only in pieces (中, 文, 漢, 字 and 😀 are no
     * token of it; every byte is): each output, greedy or sampled, is one of the choices, spelled byte by byte;
     * so are the four bytes of 😀 (two UTF-16 units) a pattern repeats, and a pattern's character after
     * "yes" or "no".
     */
    @Test
    void charactersTheVocabularyHoldsOnlyInPiecesAreSpelledByteByByte() {
        List<String> choices = List.of("中文", "漢字");
        List<String> whole = outputs(OutputGrammar.choice(choices), 8, 12);
        assertThat(whole).hasSize(8).allSatisfy(text -> assertThat(text).isIn(choices));
        List<String> faces = outputs(OutputGrammar.regex("😀{1,2}"), 6, 12);
        assertThat(faces).hasSize(6).allSatisfy(text -> assertThat(text).isIn("😀", "😀😀"));
        List<String> patterned = outputs(OutputGrammar.regex("(yes|no)\\ue000"), 6, 12);
        assertThat(patterned).hasSize(6).allSatisfy(text -> assertThat(text).isIn("yes\ue000", "no\ue000"));
    }

    /**
     * A grammar whose next character no UTF-8 spells (half a surrogate pair, U+D800, which a choice may
     * hold): refused at submission
     * when it is the first, ended with NO_TOKEN_LEFT when it comes after "yes" or "no"; each a message
     * naming the grammar, and the engine serves on.
     */
    @Test
    void aGrammarNoTokenCanContinueEndsTheRequestNamingIt() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        int vocab = model.config().vocabSize();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            SamplingParams first = SamplingParams.builder().maxTokens(8).grammar(OutputGrammar.choice(List.of("\ud800"))).build();
            assertThatThrownBy(() -> engine.submit(new EngineRequest(prompt(vocab, 9, 1), first, false, -1, -1)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("response_format: no token is left to generate first; the output's grammar "
                            + "(response_format, tools or guided decoding) allows none");
            SamplingParams later = SamplingParams.builder().maxTokens(8).grammar(OutputGrammar.choice(List.of("yes\ud800", "no\ud800")))
                    .build();
            EngineRuns.Outcome outcome = run(engine, new EngineRequest(prompt(vocab, 9, 2), later, false, -1, -1));
            assertThat(outcome.text()).isIn("yes", "no");
            assertThat(outcome.failed().reason()).isEqualTo(EngineEvent.Failed.Reason.NO_TOKEN_LEFT);
            assertThat(outcome.failed().message()).startsWith("response_format: no token is left to generate after ")
                    .endsWith("; the output's grammar (response_format, tools or guided decoding) allows none");
            SamplingParams free = SamplingParams.builder().maxTokens(3).build();
            assertThat(run(engine, new EngineRequest(prompt(vocab, 9, 3), free, false, -1, -1)).tokens()).hasSize(3);
        }
    }

    /** {@link #outputs(LoadedModel, OutputGrammar, int, int)} on the byte-level granitemoehybrid fixture. */
    private static List<String> outputs(OutputGrammar grammar, int requests, int maxTokens) {
        return outputs(TestModels.load("granitemoehybrid"), grammar, requests, maxTokens);
    }

    /**
     * Runs {@code requests} requests (greedy and sampled, each its own prompt) held to {@code grammar},
     * checks each output against the grammar, and returns those that ended by themselves. The text of
     * each of those is its tokens' bytes, as the grammar read them.
     */
    static List<String> outputs(LoadedModel model, OutputGrammar grammar, int requests, int maxTokens) {
        int vocab = model.config().vocabSize();
        List<String> whole = new ArrayList<>();
        try (Engine engine = Engine.start(model, EngineTest.OPS, EngineTest.SMALL)) {
            for (int seed = 0; seed < requests; seed++) {
                SamplingParams params = SamplingParams.builder().temperature(seed % 4 == 0 ? 0 : 1.5).seed((long) seed)
                        .maxTokens(maxTokens).grammar(grammar).build();
                EngineRuns.Outcome outcome = run(engine,
                        new EngineRequest(prompt(vocab, 9, seed), params, false, -1, -1));
                assertThat(outcome.failed()).as("seed %d", seed).isNull();
                String text = outcome.text();
                GrammarCursor cursor = new GrammarCursor(grammar);
                assertThat(cursor.acceptAll(text)).as("seed %d: %s", seed, text).isTrue();
                if (outcome.finished().reason() == FinishReason.STOP) {
                    assertThat(cursor.mayEnd()).as("seed %d: %s", seed, text).isTrue();
                    assertThat(text).as("seed %d: the tokens' bytes", seed).isEqualTo(spelled(model, outcome.tokens()));
                    whole.add(text);
                } else {
                    assertThat(outcome.tokens()).hasSize(maxTokens);
                }
            }
        }
        return whole;
    }

    /** The text of {@code tokens}' bytes, each as it adds to a text, special tokens left out. */
    private static String spelled(LoadedModel model, List<Integer> tokens) {
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        for (int token : tokens) {
            if (!model.tokenizer().isSpecial(token)) {
                bytes.writeBytes(model.tokenizer().tokenBytes(token));
            }
        }
        return bytes.toString(java.nio.charset.StandardCharsets.UTF_8);
    }
}
