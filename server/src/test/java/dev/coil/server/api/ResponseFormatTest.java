package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.TestServer;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Structured outputs on the demo model, which was never trained on JSON: OpenAI's response_format
 * json_object and json_schema, vLLM's structured_outputs and guided_json / guided_choice / guided_regex /
 * guided_grammar, and llama.cpp's grammar.
 * Whole answers and streams hold to the grammar (a JSON object, a value networknt's validator accepts,
 * one of the choices, a text java.util.regex matches whole); cut by max_tokens, they are its start.
 * What Coil cannot hold output to is a 400 naming it.
 */
class ResponseFormatTest {

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
    void jsonObjectAnswersAreJsonObjects() throws Exception {
        List<String> closed = new ArrayList<>();
        for (int seed = 0; seed < 6; seed++) {
            String request = "\"messages\": [{\"role\": \"user\", \"content\": \"Describe apt as JSON.\"}], "
                    + "\"max_tokens\": 48, \"temperature\": 0.9, \"seed\": " + seed
                    + ", \"response_format\": {\"type\": \"json_object\"}";
            JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
            String content = choice.at("/message/content").asText();
            // Cut by max_tokens, an answer is the start of an object (the engine's tests check it is a
            // prefix of one, character by character); ended by itself, a whole one.
            assertThat(content.strip()).startsWith("{");
            if (choice.get("finish_reason").asText().equals("stop")) {
                assertThat(TestServer.JSON.readTree(content).isObject()).as(content).isTrue();
                closed.add(content);
            }
            assertStreamedAs(request, content);
        }
        System.out.println("[json] closed objects: " + closed);
        assertThat(closed).as("answers that closed their object").isNotEmpty();
    }

    static final String SCHEMA = """
            {"type": "object",
             "properties": {"word": {"type": "string", "maxLength": 8},
                            "count": {"type": "integer"},
                            "kind": {"enum": ["noun", "verb", "other"]}},
             "required": ["word", "count", "kind"], "additionalProperties": false}""";

    @Test
    void jsonSchemaAnswersAreValid() throws Exception {
        System.out.println("[json_schema] whole answers: " + assertWholeAnswersValid(SCHEMA, 64));
    }

    /**
     * Four seeded chat answers held to {@code schema}: each starts an object, each that ends by itself
     * is valid by networknt's validator, each streams as it answers whole; at least one ends by itself.
     */
    private static List<String> assertWholeAnswersValid(String schema, int maxTokens) throws Exception {
        List<String> whole = new ArrayList<>();
        for (int seed = 0; seed < 4; seed++) {
            String request = "\"messages\": [{\"role\": \"user\", \"content\": \"Describe apt as JSON.\"}], "
                    + "\"max_tokens\": " + maxTokens + ", \"temperature\": 0.9, \"seed\": " + seed
                    + ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"answer\", "
                    + "\"strict\": true, \"schema\": " + schema + "}}";
            JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
            String content = choice.at("/message/content").asText();
            assertThat(content).startsWith("{");
            if (choice.get("finish_reason").asText().equals("stop")) {
                assertThat(TestServer.schemaErrors(schema, content)).as(content).isEmpty();
                whole.add(content);
            }
            assertStreamedAs(request, content);
        }
        assertThat(whole).as("answers that ended by themselves").isNotEmpty();
        return whole;
    }

    /** Multiples within bounds, and a dict whose keys pydantic constrains (propertyNames). */
    static final String NUMBERS_AND_NAMES = """
            {"type": "object",
             "properties": {"count": {"type": "integer", "minimum": 0, "maximum": 100, "multipleOf": 5},
                            "price": {"type": "number", "minimum": 0, "maximum": 50, "multipleOf": 0.25},
                            "tags": {"type": "object", "propertyNames": {"pattern": "^[a-z]{1,6}$"},
                                     "additionalProperties": {"type": "integer"}, "maxProperties": 3}},
             "required": ["count", "price", "tags"], "additionalProperties": false}""";

    @Test
    void multiplesAndKeyNamesHoldTheAnswer() throws Exception {
        System.out.println("[json_schema] multiples and key names: " + assertWholeAnswersValid(NUMBERS_AND_NAMES, 96));
    }

    /**
     * Dicts whose keys patternProperties constrains: pydantic's dict of a constrained str (no
     * additionalProperties) and two patterns of one schema with no other key.
     */
    static final String PATTERN_KEYS = """
            {"type": "object",
             "properties": {"scores": {"type": "object", "maxProperties": 3,
                                       "patternProperties": {"^[a-z]{1,6}$": {"type": "integer", "minimum": 0}}},
                            "labels": {"type": "object", "additionalProperties": false, "maxProperties": 2,
                                       "patternProperties": {"^x[0-9]$": {"type": "boolean"}, "^y+$": {"type": "boolean"}}}},
             "required": ["scores", "labels"], "additionalProperties": false}""";

    @Test
    void patternKeysHoldTheAnswer() throws Exception {
        System.out.println("[json_schema] pattern keys: " + assertWholeAnswersValid(PATTERN_KEYS, 96));
    }

    /**
     * pydantic's set[str], set[int], a set of an int from 1 to 5 and a set of a float from 0 to 1
     * (uniqueItems over strings, integers, bounded integers and numbers) beside a set of a Literal's values.
     */
    static final String SETS = """
            {"type": "object",
             "properties": {"words": {"type": "array", "items": {"type": "string", "maxLength": 6}, "uniqueItems": true,
                                      "minItems": 2, "maxItems": 4},
                            "ids": {"type": "array", "items": {"type": "integer"}, "uniqueItems": true,
                                    "minItems": 2, "maxItems": 4},
                            "kinds": {"type": "array", "items": {"enum": ["noun", "verb"]}, "uniqueItems": true},
                            "levels": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 5},
                                       "uniqueItems": true, "minItems": 1, "maxItems": 3},
                            "ratios": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                                       "uniqueItems": true, "minItems": 1, "maxItems": 3}},
             "required": ["words", "ids", "kinds", "levels", "ratios"], "additionalProperties": false}""";

    @Test
    void setsHoldDistinctItems() throws Exception {
        System.out.println("[json_schema] sets: " + assertWholeAnswersValid(SETS, 200));
    }

    /** vLLM's spellings: structured_outputs (json, choice) and the older guided_json and guided_choice. */
    @Test
    void vllmStructuredOutputsHoldTheAnswer() throws Exception {
        String prompt = "\"prompt\": \"The word is\", \"max_tokens\": 64, \"temperature\": 0";
        for (String field : List.of("\"structured_outputs\": {\"choice\": [\"yes\", \"no\", \"not sure\"]}",
                "\"guided_choice\": [\"yes\", \"no\", \"not sure\"]")) {
            JsonNode choice = server.postJson("/v1/completions", "{" + prompt + ", " + field + "}").at("/choices/0");
            assertThat(choice.get("text").asText()).as(field).isIn("yes", "no", "not sure");
            assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
        }
        for (String field : List.of("\"structured_outputs\": {\"json\": " + SCHEMA + "}",
                "\"guided_json\": " + TestServer.JSON.writeValueAsString(SCHEMA))) {
            JsonNode choice = server.postJson("/v1/completions", "{" + prompt + ", " + field + "}").at("/choices/0");
            String text = choice.get("text").asText();
            assertThat(text).as(field).startsWith("{");
            if (choice.get("finish_reason").asText().equals("stop")) {
                assertThat(TestServer.schemaErrors(SCHEMA, text)).as(text).isEmpty();
            }
        }
    }

    /**
     * A GBNF grammar, in vLLM's two spellings and llama.cpp's: the same answers, each a sentence of the
     * grammar (nested lists, which no regex holds), streamed the same.
     */
    @Test
    void grammarAnswersAreSentencesOfTheGrammar() throws Exception {
        String grammar = TestServer.JSON.writeValueAsString("""
                root ::= "Items: " list "."
                list ::= "[" item ("," " "? item){0,2} "]"
                item ::= [a-z]{1,6} | list
                """);
        List<String> texts = new ArrayList<>();
        for (String field : List.of("\"structured_outputs\": {\"grammar\": " + grammar + "}",
                "\"guided_grammar\": " + grammar, "\"grammar\": " + grammar)) {
            String request = "\"messages\": [{\"role\": \"user\", \"content\": \"List some things.\"}], "
                    + "\"max_tokens\": 80, \"temperature\": 0.8, \"seed\": 3, " + field;
            JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
            String content = choice.at("/message/content").asText();
            System.out.println("[grammar] " + field.substring(0, 20) + " -> " + content);
            assertThat(choice.get("finish_reason").asText()).as(content).isEqualTo("stop");
            // Flatten innermost lists into words until one list is left, then check that one.
            String flat = content;
            while (flat.matches(".*\\[[a-z]{1,6}(, ?[a-z]{1,6}){0,2}\\].*\\].*")) {
                flat = flat.replaceFirst("\\[[a-z]{1,6}(, ?[a-z]{1,6}){0,2}\\](?=.*\\])", "word");
            }
            assertThat(flat).as(content).matches("Items: \\[[a-z]{1,6}(, ?[a-z]{1,6}){0,2}\\]\\.");
            assertStreamedAs(request, content);
            texts.add(content);
        }
        assertThat(texts).as("the three spellings ask for the same grammar").containsOnly(texts.getFirst());
    }

    /** vLLM's regex, in both spellings, and a schema's pattern: the whole answer matches, and ends by itself. */
    @Test
    void regexAnswersMatchWhole() throws Exception {
        String regex = "[A-Z][a-z]{1,6}( [a-z]{1,6}){0,3}\\.";
        Pattern java = Pattern.compile(regex);
        String quoted = TestServer.JSON.writeValueAsString(regex);
        String prompt = "\"prompt\": \"The word is\", \"max_tokens\": 64, \"temperature\": 0";
        for (String field : List.of("\"structured_outputs\": {\"regex\": " + quoted + "}",
                "\"guided_regex\": " + quoted)) {
            JsonNode choice = server.postJson("/v1/completions", "{" + prompt + ", " + field + "}").at("/choices/0");
            String text = choice.get("text").asText();
            System.out.println("[regex] " + field + " -> " + text);
            assertThat(java.matcher(text).matches()).as(text).isTrue();
            assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
        }
        String schema = "{\"type\": \"object\", \"properties\": {\"code\": {\"type\": \"string\", "
                + "\"pattern\": \"^[A-Z]{2}-\\\\d{3}$\"}}, \"required\": [\"code\"]}";
        List<String> whole = new ArrayList<>();
        for (int seed = 0; seed < 3; seed++) {
            String base = "\"messages\": [{\"role\": \"user\", \"content\": \"A code, please.\"}], "
                    + "\"max_tokens\": 64, \"temperature\": 0.9, \"seed\": " + seed;
            String request = base + ", \"guided_regex\": \"\\\\d{3}-\\\\d{4}\"";
            JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
            String content = choice.at("/message/content").asText();
            assertThat(content).matches("\\d{3}-\\d{4}");
            assertStreamedAs(request, content);
            String answer = schemaAnswer(base, schema);
            if (answer != null) {
                assertThat(TestServer.JSON.readTree(answer).get("code").asText()).matches("[A-Z]{2}-\\d{3}");
                whole.add(answer);
            }
        }
        System.out.println("[pattern] whole answers: " + whole);
        assertThat(whole).as("answers that ended by themselves").isNotEmpty();
    }

    /**
     * Characters the demo model's vocabulary holds only in pieces (日, 語, 漢 and 😀 are no token of
     * it; each of their bytes is): a choice and a schema's enum of them are answered, whole and streamed
     * alike, byte by byte.
     */
    @Test
    void charactersSpelledInPiecesHoldTheAnswer() throws Exception {
        List<String> choices = List.of("日語", "😀漢");
        List<String> picks = new ArrayList<>();
        for (int seed = 0; seed < 3; seed++) {
            String base = "\"messages\": [{\"role\": \"user\", \"content\": \"Pick one.\"}], \"max_tokens\": 16, "
                    + "\"temperature\": 1.0, \"seed\": " + seed;
            String choice = base + ", \"structured_outputs\": {\"choice\": [\"日語\", \"😀漢\"]}";
            JsonNode answer = server.postJson("/v1/chat/completions", "{" + choice + "}").at("/choices/0");
            String content = answer.at("/message/content").asText();
            assertThat(content).isIn(choices);
            assertThat(answer.get("finish_reason").asText()).isEqualTo("stop");
            assertStreamedAs(choice, content);
            String schema = "{\"type\": \"object\", \"properties\": {\"pick\": {\"enum\": [\"日語\", \"😀漢\"]}}, "
                    + "\"required\": [\"pick\"]}";
            String picked = schemaAnswer(base, schema);
            if (picked != null) {
                picks.add(TestServer.JSON.readTree(picked).get("pick").asText());
            }
        }
        System.out.println("[pieces] whole schema answers' picks: " + picks);
        assertThat(picks).as("schema answers that ended by themselves").isNotEmpty();
    }

    /** A tool call's arguments, as a structural tag's tag holds them. */
    static final String CITY = """
            {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10}}, "required": ["city"],
             "additionalProperties": false}""";

    /**
     * vLLM's structural tags: response_format's (a call forced at once, its arguments valid JSON of the
     * schema, streamed the same) and structured_outputs' (a sequence of a constant, a word, a tag holding
     * a bounded integer; in the older form and as JSON text, free text around a call begun by a trigger).
     */
    @Test
    void structuralTagsHoldTheAnswer() throws Exception {
        String format = """
                {"type": "structural_tag", "format": {"type": "triggered_tags", "triggers": ["<tool="],
                 "at_least_one": true, "stop_after_first": true,
                 "tags": [{"begin": "<tool=weather>", "content": {"type": "json_schema", "json_schema": %s},
                           "end": "</tool>"}]}}""".formatted(CITY);
        List<String> whole = new ArrayList<>();
        for (int seed = 0; seed < 3; seed++) {
            String request = "\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Oslo?\"}], "
                    + "\"max_tokens\": 48, \"temperature\": 0.9, \"seed\": " + seed + ", \"response_format\": " + format;
            JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
            String content = choice.at("/message/content").asText();
            assertThat(content).startsWith("<tool=weather>{");
            if (choice.get("finish_reason").asText().equals("stop")) {
                assertThat(content).endsWith("</tool>");
                String arguments = content.substring("<tool=weather>".length(), content.length() - "</tool>".length());
                assertThat(TestServer.schemaErrors(CITY, arguments)).as(content).isEmpty();
                whole.add(content);
            }
            assertStreamedAs(request, content);
        }
        System.out.println("[structural_tag] calls: " + whole);
        assertThat(whole).as("calls that ended by themselves").isNotEmpty();

        String sequence = TestServer.JSON.writeValueAsString("""
                {"type": "structural_tag", "format": {"type": "sequence", "elements": [
                  {"type": "const_string", "value": " the "}, {"type": "regex", "pattern": "[a-z]{1,8}"},
                  {"type": "const_string", "value": ". "},
                  {"type": "tag", "begin": "<n>", "content": {"type": "json_schema",
                   "json_schema": {"type": "integer", "minimum": 0, "maximum": 99}}, "end": "</n>"}]}}""");
        JsonNode choice = server.postJson("/v1/completions", "{\"prompt\": \"The word is\", \"max_tokens\": 32, "
                + "\"temperature\": 0, \"structured_outputs\": {\"structural_tag\": " + sequence + "}}").at("/choices/0");
        String text = choice.get("text").asText();
        System.out.println("[structural_tag] sequence -> " + text);
        assertThat(text).matches(" the [a-z]{1,8}\\. <n>(0|[1-9][0-9]?)</n>");
        assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");

        String structures = """
                {"type": "structural_tag", "triggers": ["<tool="],
                 "structures": [{"begin": "<tool=weather>", "schema": %s, "end": "</tool>"}]}""".formatted(CITY);
        for (int seed = 0; seed < 2; seed++) {
            choice = server.postJson("/v1/completions", "{\"prompt\": \"Call <tool=weather>{\\\"city\\\": \\\"Rome\\\"}</tool> "
                    + "or say\", \"max_tokens\": 40, \"temperature\": 1.0, \"seed\": " + seed
                    + ", \"structured_outputs\": {\"structural_tag\": " + structures + "}}").at("/choices/0");
            text = choice.get("text").asText();
            System.out.println("[structural_tag] structures -> " + text);
            // Wherever the trigger appears, a call follows it: its arguments valid, then the end (or the cut).
            int at = text.indexOf("<tool=");
            while (at >= 0) {
                String rest = text.substring(at);
                assertThat("<tool=weather>".startsWith(rest) || rest.startsWith("<tool=weather>")).as(text).isTrue();
                int end = rest.indexOf("</tool>");
                if (end < 0) {
                    assertThat(choice.get("finish_reason").asText()).as(text).isEqualTo("length");
                    break;
                }
                assertThat(TestServer.schemaErrors(CITY, rest.substring("<tool=weather>".length(), end))).isEmpty();
                at = text.indexOf("<tool=", at + end);
            }
        }
    }

    @Test
    void whatCannotBeHeldIsRefusedByName() {
        refused("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"a\", "
                + "\"schema\": {\"type\": \"string\", \"pattern\": \"^(?!a)\"}}}", "response_format",
                "response_format.json_schema.schema: at #/pattern: the pattern \"^(?!a)\" at character 2: "
                + "lookaround is not supported");
        refused("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"a\", "
                + "\"schema\": {\"type\": \"string\", \"multipleOf\": 2}}}", "response_format",
                "at #: the keyword \"multipleOf\" is not supported");
        refused("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"schema\": "
                + "{\"$ref\": \"#/$defs/Gone\"}}}", "response_format", "points to nothing");
        refused("\"response_format\": {\"type\": \"xml\"}", "response_format", "\"xml\"");
        refused("\"response_format\": {\"type\": \"json_schema\"}", "response_format", "json_schema must be");
        refused("\"guided_regex\": \"a\\\\1\"", "guided_regex", "guided_regex: the pattern \"a\\1\" at character 2: "
                + "back references are not supported");
        refused("\"guided_regex\": \"^$\"", "guided_regex", "matches only the empty text");
        refused("\"structured_outputs\": {\"regex\": 5}", "structured_outputs",
                "structured_outputs.regex must be a non-empty string");
        refused("\"structured_outputs\": {\"grammar\": \"root ::= x\"}", "structured_outputs",
                "structured_outputs.grammar: the rule x (at 9) is not defined");
        refused("\"guided_grammar\": \"root ::= root \\\"a\\\" | \\\"b\\\"\"", "guided_grammar",
                "guided_grammar: the rule root is left-recursive");
        refused("\"grammar\": 3", "grammar", "grammar must be a non-empty string of GBNF");
        refused("\"structured_outputs\": {\"structural_tag\": {}}", "structured_outputs",
                "structured_outputs.structural_tag: a structural tag needs \"format\"");
        refused("\"structured_outputs\": {\"structural_tag\": \"{\\\"format\\\": {\\\"type\\\": \\\"any_tokens\\\"}}\"}",
                "structured_outputs", "structured_outputs.structural_tag: format: the format \"any_tokens\" is not "
                + "supported");
        refused("\"response_format\": {\"type\": \"structural_tag\", \"format\": {\"type\": \"tag\", \"begin\": \"<a>\", "
                + "\"content\": {\"type\": \"any_text\", \"max_tokens\": 5}, \"end\": \"</a>\"}}", "response_format",
                "response_format: format.content.max_tokens is not supported");
        refused("\"structured_outputs\": {\"whitespace_pattern\": \" \"}", "structured_outputs",
                "whitespace_pattern is not supported");
        refused("\"grammar\": \"root ::= \\\"a\\\"\", \"guided_regex\": \"a\"", "grammar",
                "give one of guided_regex and grammar");
        refused("\"structured_outputs\": {}", "structured_outputs",
                "one of json, json_object, choice, regex, grammar and structural_tag");
        refused("\"guided_regex\": \"a\", \"guided_choice\": [\"a\"]", "guided_regex",
                "give one of guided_choice and guided_regex");
        refused("\"guided_choice\": \"yes\"", "guided_choice", "non-empty array of strings");
        refused("\"guided_choice\": [\"\"]", "guided_choice", "non-empty strings");
        refused("\"guided_json\": \"{\\\"type\\\": \"", "guided_json", "not JSON");
        refused("\"response_format\": {\"type\": \"json_object\"}, \"guided_choice\": [\"a\"]", "guided_choice",
                "give one of response_format and guided_choice");
    }

    /** The same chat request streamed gives the same content. */
    /**
     * The chat answer to {@code base} held to {@code schema} (response_format json_schema), streamed
     * alike, and valid when it ended by itself; null when max_tokens cut it.
     */
    private static String schemaAnswer(String base, String schema) {
        String request = base + ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": "
                + "{\"name\": \"answer\", \"schema\": " + schema + "}}";
        JsonNode choice = server.postJson("/v1/chat/completions", "{" + request + "}").at("/choices/0");
        String content = choice.at("/message/content").asText();
        assertStreamedAs(request, content);
        if (!choice.get("finish_reason").asText().equals("stop")) {
            return null;
        }
        assertThat(TestServer.schemaErrors(schema, content)).as(content).isEmpty();
        return content;
    }

    private static void assertStreamedAs(String request, String content) {
        StringBuilder streamed = new StringBuilder();
        TestServer.events(server.post("/v1/chat/completions", "{" + request + ", \"stream\": true}").body())
                .forEach(event -> streamed.append(event.at("/choices/0/delta/content").asText("")));
        assertThat(streamed.toString()).isEqualTo(content);
    }

    /** A completion request with {@code field} is a 400 naming {@code param}. */
    private static void refused(String field, String param, String message) {
        server.assertRefused("/v1/completions", "{\"prompt\": \"x\", " + field + "}", param, message);
    }
}
