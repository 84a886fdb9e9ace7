package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * /v1/completions' answers on the demo model: text_offset across characters split over byte-level
 * tokens (prompt echo and generated tokens, streamed and not), vLLM's stop_token_ids, and a prompt
 * that fills the context window scored with max_tokens 0.
 */
class CompletionsTest {

    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static List<Integer> ints(JsonNode array) {
        List<Integer> values = new ArrayList<>();
        array.forEach(value -> values.add(value.asInt()));
        return values;
    }

    private static int codePoints(String text) {
        return text.codePointCount(0, text.length());
    }

    /** text from a text_offset on: offsets count code points, as Python indexes a str. */
    private static String from(String text, int offset) {
        return text.substring(text.offsetByCodePoints(0, offset));
    }

    /** The generated token ids of a completion asked with return_tokens_as_token_ids and logprobs 0. */
    private static List<Integer> generatedIds(JsonNode choice) {
        List<Integer> ids = new ArrayList<>();
        choice.at("/logprobs/tokens").forEach(token -> ids.add(Integer.parseInt(token.asText().substring(9))));
        return ids;
    }

    /** vLLM's allowed_token_ids: every generated token is one of them, streamed or not. */
    @Test
    void allowedTokenIdsHoldEveryToken() {
        List<Integer> allowed = ints(server.postJson("/tokenize", "{\"prompt\": \" apt dpkg install package\", "
                + "\"add_special_tokens\": false}").get("tokens"));
        String request = "{\"prompt\": \"The Debian package manager\", \"max_tokens\": 10, \"logprobs\": 0, "
                + "\"return_tokens_as_token_ids\": true, \"allowed_token_ids\": " + allowed;
        for (String sampling : List.of("\"temperature\": 0", "\"temperature\": 1.0, \"seed\": 5")) {
            JsonNode choice = server.postJson("/v1/completions", request + ", " + sampling + "}").at("/choices/0");
            assertThat(generatedIds(choice)).as(sampling).hasSize(10).allMatch(allowed::contains);
        }
    }

    /**
     * vLLM's bad_words: a word of the greedy answer, forbidden, never comes whole (neither at the
     * start nor after a space), and the answer before the place it came is the same.
     */
    @Test
    void aBadWordNeverComesWhole() {
        String request = "{\"prompt\": \"The Debian package manager\", \"max_tokens\": 16, \"temperature\": 0, "
                + "\"logprobs\": 0, \"return_tokens_as_token_ids\": true, \"ignore_eos\": true";
        JsonNode free = server.postJson("/v1/completions", request + "}").at("/choices/0");
        List<Integer> freeIds = generatedIds(free);
        // The first word of the answer that takes more than one token: forbidding it forbids its last token
        // only after the ones before it.
        String word = null;
        List<Integer> spaced = null;
        for (String candidate : free.get("text").asText().trim().split("\\s+")) {
            List<Integer> ids = ints(server.postJson("/tokenize", "{\"prompt\": \" " + candidate.replace("\"", "")
                    + "\", \"add_special_tokens\": false}").get("tokens"));
            if (ids.size() > 1 && java.util.Collections.indexOfSubList(freeIds, ids) >= 0) {
                word = candidate.replace("\"", "");
                spaced = ids;
                break;
            }
        }
        assertThat(word).as("a word of several tokens in %s", free.get("text")).isNotNull();
        List<Integer> bare = ints(server.postJson("/tokenize", "{\"prompt\": \"" + word
                + "\", \"add_special_tokens\": false}").get("tokens"));
        JsonNode held = server.postJson("/v1/completions", request + ", \"bad_words\": [\"" + word + "\"]}")
                .at("/choices/0");
        List<Integer> heldIds = generatedIds(held);
        assertThat(java.util.Collections.indexOfSubList(heldIds, spaced)).as(held.get("text").asText()).isEqualTo(-1);
        assertThat(java.util.Collections.indexOfSubList(heldIds, bare)).as(held.get("text").asText()).isEqualTo(-1);
        int at = java.util.Collections.indexOfSubList(freeIds, spaced) + spaced.size() - 1;
        assertThat(heldIds.subList(0, at)).isEqualTo(freeIds.subList(0, at));
        assertThat(heldIds.get(at)).isNotEqualTo(freeIds.get(at));
    }

    /**
     * vLLM's min_tokens: a stop string (here the first token's own text, which would end the answer
     * at once) and a stop token id count only after the first min_tokens tokens.
     */
    @Test
    void minTokensHoldsBackStopStringsAndStopIds() {
        String prompt = "{\"prompt\": \"A shell script\", \"temperature\": 0, ";
        JsonNode free = server.postJson("/v1/completions", prompt + "\"max_tokens\": 6, \"logprobs\": 0}")
                .at("/choices/0");
        List<String> tokens = new ArrayList<>();
        free.at("/logprobs/tokens").forEach(token -> tokens.add(token.asText()));
        String stop = TestServer.JSON.valueToTree(tokens.getFirst()).toString();

        JsonNode stopped = server.postJson("/v1/completions", prompt + "\"max_tokens\": 6, \"stop\": [" + stop + "]}")
                .at("/choices/0");
        assertThat(stopped.get("text").asText()).isEmpty();
        assertThat(stopped.get("finish_reason").asText()).isEqualTo("stop");

        JsonNode held = server.postJson("/v1/completions", prompt + "\"max_tokens\": 6, \"min_tokens\": 3, "
                + "\"stop\": [" + stop + "]}").at("/choices/0");
        assertThat(held.get("text").asText()).startsWith(String.join("", tokens.subList(0, 3)));

        // The first token as a stop token id: without min_tokens it is the whole answer; with it, the
        // greedy choice at the first position is the runner-up.
        JsonNode ids = server.postJson("/tokenize", "{\"prompt\": \"A shell script\"}").get("tokens");
        JsonNode scored = server.postJson("/v1/completions", "{\"prompt\": " + ids + ", \"max_tokens\": 1, "
                + "\"temperature\": 0, \"logprobs\": 2}").at("/choices/0/logprobs/top_logprobs/0");
        JsonNode firstId = server.postJson("/tokenize", "{\"prompt\": " + stop + ", \"add_special_tokens\": false}")
                .get("tokens");
        assertThat(firstId).as("one token").hasSize(1);
        JsonNode heldId = server.postJson("/v1/completions", prompt + "\"max_tokens\": 2, \"min_tokens\": 1, "
                + "\"stop_token_ids\": " + firstId + ", \"logprobs\": 0}").at("/choices/0");
        List<String> alternatives = new ArrayList<>();
        scored.fieldNames().forEachRemaining(alternatives::add);
        assertThat(alternatives).hasSize(2).contains(tokens.getFirst());
        alternatives.remove(tokens.getFirst());
        assertThat(heldId.at("/logprobs/tokens/0").asText()).isEqualTo(alternatives.getFirst());
    }

    /**
     * vLLM's include_stop_str_in_output: the stop string found ends the text, whole and streamed;
     * stop_reason names it either way.
     */
    /** A temperature too small to divide by (its inverse overflows) answers as greedy, as vLLM's, not with a 500. */
    @Test
    void aVanishingTemperatureIsGreedy() {
        String request = "\"prompt\": \"The apt command\", \"max_tokens\": 12, \"temperature\": ";
        String greedy = server.postJson("/v1/completions", "{" + request + "0}").at("/choices/0/text").asText();
        for (String temperature : List.of("1e-320", "1e-6")) {
            JsonNode answer = server.postJson("/v1/completions", "{" + request + temperature + "}");
            assertThat(answer.at("/choices/0/text").asText()).as(temperature).isEqualTo(greedy).isNotEmpty();
        }
    }

    @Test
    void aStopStringEndsTheTextWhenAskedFor() {
        String request = "\"prompt\": \"The apt command\", \"max_tokens\": 12, \"temperature\": 0";
        String text = server.postJson("/v1/completions", "{" + request + "}").at("/choices/0/text").asText();
        assertThat(text.length()).isGreaterThan(6);
        String stop = text.substring(3, 6);
        String before = text.substring(0, text.indexOf(stop));
        String stopping = request + ", \"stop\": [" + TestServer.JSON.valueToTree(stop) + "]";

        JsonNode plain = server.postJson("/v1/completions", "{" + stopping + "}").at("/choices/0");
        assertThat(plain.get("text").asText()).isEqualTo(before);
        JsonNode included = server.postJson("/v1/completions", "{" + stopping
                + ", \"include_stop_str_in_output\": true}").at("/choices/0");
        assertThat(included.get("text").asText()).isEqualTo(before + stop);
        assertThat(included.get("finish_reason").asText()).isEqualTo("stop");
        assertThat(included.get("stop_reason").asText()).isEqualTo(stop);

        StringBuilder streamed = new StringBuilder();
        TestServer.events(server.post("/v1/completions", "{" + stopping + ", \"include_stop_str_in_output\": true, "
                + "\"stream\": true}").body()).forEach(event -> streamed.append(event.at("/choices/0/text").asText("")));
        assertThat(streamed.toString()).isEqualTo(before + stop);
    }

    /**
     * vLLM's skip_special_tokens: a special token (the demo model's &lt;|start_of_role|&gt;, all but
     * forced by a +100 bias) adds no text by default, and its spelling with the switch off, whole and
     * streamed, with text_offset counting it.
     */
    @Test
    void specialTokensAreSpelledOutWhenNotSkipped() {
        String request = "\"prompt\": \"The\", \"max_tokens\": 2, \"temperature\": 0, \"logit_bias\": {\"1\": 100}, "
                + "\"logprobs\": 0";
        JsonNode skipped = server.postJson("/v1/completions", "{" + request + "}").at("/choices/0");
        assertThat(skipped.get("text").asText()).isEmpty();
        assertThat(skipped.at("/logprobs/tokens").toString()).isEqualTo("[\"<|start_of_role|>\",\"<|start_of_role|>\"]");

        String spelled = request + ", \"skip_special_tokens\": false";
        JsonNode whole = server.postJson("/v1/completions", "{" + spelled + "}").at("/choices/0");
        assertThat(whole.get("text").asText()).isEqualTo("<|start_of_role|><|start_of_role|>");
        assertThat(ints(whole.at("/logprobs/text_offset"))).containsExactly(0, 17);
        StringBuilder streamed = new StringBuilder();
        TestServer.events(server.post("/v1/completions", "{" + spelled + ", \"stream\": true}").body())
                .forEach(event -> streamed.append(event.at("/choices/0/text").asText("")));
        assertThat(streamed.toString()).isEqualTo(whole.get("text").asText());
    }

    /**
     * vLLM's truncate_prompt_tokens: a prompt keeps its last k tokens, the echo shows their text, and
     * a prompt longer than the context window is served instead of refused.
     */
    @Test
    void truncatePromptTokensKeepsThePromptsEnd() {
        List<Integer> ids = IntStream.range(0, 20).map(i -> 300 + 7 * i).boxed().toList();
        List<Integer> last = ids.subList(15, 20);
        JsonNode truncated = server.postJson("/v1/completions", "{\"prompt\": " + ids + ", \"truncate_prompt_tokens\": 5, "
                + "\"max_tokens\": 4, \"temperature\": 0, \"echo\": true, \"logprobs\": 0}");
        JsonNode direct = server.postJson("/v1/completions", "{\"prompt\": " + last + ", \"max_tokens\": 4, "
                + "\"temperature\": 0, \"echo\": true, \"logprobs\": 0}");
        assertThat(truncated.at("/usage/prompt_tokens").asInt()).isEqualTo(5);
        assertThat(truncated.at("/choices/0/text")).isEqualTo(direct.at("/choices/0/text"));
        assertThat(truncated.at("/choices/0/logprobs/tokens")).isEqualTo(direct.at("/choices/0/logprobs/tokens"))
                .hasSize(9);
        assertThat(truncated.at("/choices/0/text").asText())
                .startsWith(server.postJson("/detokenize", "{\"tokens\": " + last + "}").get("prompt").asText());

        List<Integer> tooLong = IntStream.range(0, 9000).map(i -> 300 + i % 500).boxed().toList();
        JsonNode served = server.postJson("/v1/completions", "{\"prompt\": " + tooLong + ", \"max_tokens\": 2, "
                + "\"truncate_prompt_tokens\": 64}");
        assertThat(served.at("/usage/prompt_tokens").asInt()).isEqualTo(64);
        assertThat(served.at("/usage/completion_tokens").asInt()).isEqualTo(2);

        JsonNode chat = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": "
                + "\"What is dpkg? Answer in one sentence.\"}], \"max_tokens\": 2, \"truncate_prompt_tokens\": 6}");
        assertThat(chat.at("/usage/prompt_tokens").asInt()).isEqualTo(6);
    }

    /**
     * vLLM's return_tokens_as_token_ids: logprobs name every token "token_id:ID", the echoed prompt's
     * and the alternatives too, in completions and chat; the ids are the tokenizer's.
     */
    @Test
    void logprobsNameTokensByIdWhenAsked() {
        JsonNode ids = server.postJson("/tokenize", "{\"prompt\": \"héllo\"}").get("tokens");
        JsonNode completion = server.postJson("/v1/completions", "{\"prompt\": \"héllo\", \"max_tokens\": 3, "
                + "\"temperature\": 0, \"echo\": true, \"logprobs\": 2, \"return_tokens_as_token_ids\": true}")
                .at("/choices/0/logprobs");
        JsonNode named = server.postJson("/v1/completions", "{\"prompt\": \"héllo\", \"max_tokens\": 3, "
                + "\"temperature\": 0, \"echo\": true, \"logprobs\": 2}").at("/choices/0/logprobs");
        List<String> tokens = new ArrayList<>();
        completion.get("tokens").forEach(token -> tokens.add(token.asText()));
        assertThat(tokens).hasSize(ids.size() + 3).allMatch(token -> token.matches("token_id:\\d+"));
        for (int i = 0; i < ids.size(); i++) {
            assertThat(tokens.get(i)).isEqualTo("token_id:" + ids.get(i).asInt());
        }
        List<Integer> generated = tokens.subList(ids.size(), tokens.size()).stream()
                .map(token -> Integer.parseInt(token.substring("token_id:".length()))).toList();
        StringBuilder namedText = new StringBuilder();
        for (int i = ids.size(); i < named.get("tokens").size(); i++) {
            namedText.append(named.get("tokens").get(i).asText());
        }
        assertThat(server.postJson("/detokenize", "{\"tokens\": " + generated + "}").get("prompt").asText())
                .as("the generated ids are the tokens named by text without the switch")
                .isEqualTo(namedText.toString());
        for (int i = 1; i < tokens.size(); i++) { // within the prefix cache's tolerance: a resumed prompt
            assertThat(completion.at("/token_logprobs/" + i).asDouble())
                    .isCloseTo(named.at("/token_logprobs/" + i).asDouble(), within(1e-5));
        }
        assertThat(completion.at("/top_logprobs/1").fieldNames().next()).startsWith("token_id:");
        assertThat(completion.get("text_offset")).isEqualTo(named.get("text_offset"));

        JsonNode chat = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": "
                + "\"hi\"}], \"max_tokens\": 2, \"temperature\": 0, \"logprobs\": true, \"top_logprobs\": 2, "
                + "\"return_tokens_as_token_ids\": true}").at("/choices/0/logprobs/content/0");
        assertThat(chat.get("token").asText()).matches("token_id:\\d+");
        assertThat(chat.at("/top_logprobs/1/token").asText()).matches("token_id:\\d+");
    }

    /** top_logprobs 0 asks for nothing, so it stands without logprobs (as vLLM takes it); above 0 it needs them. */
    @Test
    void chatTopLogprobsZeroNeedsNoLogprobs() {
        String chat = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 2, \"top_logprobs\": ";
        JsonNode choice = server.postJson("/v1/chat/completions", chat + "0}").at("/choices/0");
        assertThat(choice.get("logprobs").isNull()).isTrue();
        TestServer.assertError(server.post("/v1/chat/completions", chat + "1}"), 400,
                "top_logprobs needs logprobs set to true");
    }

    /**
     * Chat logprobs' bytes are a token's own: the two tokens that spell é in the demo vocabulary give
     * C3 and A9 (their text alone is U+FFFD), and the entries' bytes join to the answer's UTF-8.
     */
    @Test
    void chatLogprobsGiveTheBytesOfTokensHoldingPartOfACharacter() {
        List<Integer> ids = ints(server.postJson("/tokenize", "{\"prompt\": \"é\", \"add_special_tokens\": false}")
                .get("tokens"));
        assertThat(ids).hasSize(2);
        JsonNode choice = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", "
                + "\"content\": \"hi\"}], \"max_tokens\": 8, \"temperature\": 0, \"logprobs\": true, "
                + "\"top_logprobs\": 1, \"guided_choice\": [\"aé\"], \"logit_bias\": {\"" + ids.get(0) + "\": 100, \""
                + ids.get(1) + "\": 100}}").at("/choices/0");
        assertThat(choice.at("/message/content").asText()).isEqualTo("aé");
        JsonNode entries = choice.at("/logprobs/content");
        assertThat(entries).hasSize(3);
        assertThat(ints(entries.at("/1/bytes"))).containsExactly(0xC3);
        assertThat(ints(entries.at("/2/bytes"))).containsExactly(0xA9);
        assertThat(entries.at("/1/token").asText()).isEqualTo("\ufffd");
        java.io.ByteArrayOutputStream joined = new java.io.ByteArrayOutputStream();
        entries.forEach(entry -> entry.get("bytes").forEach(b -> joined.write(b.asInt())));
        assertThat(joined.toString(java.nio.charset.StandardCharsets.UTF_8)).isEqualTo("aé");
    }

    @Test
    void textOffsetsOfASplitCharacterPointWhereItStarts() {
        JsonNode logprobs = server.postJson("/v1/completions",
                "{\"prompt\": \"héllo world\", \"max_tokens\": 0, \"echo\": true, \"logprobs\": 0}")
                .at("/choices/0/logprobs");

        // é is two bytes, one token each: neither adds text until the second completes it.
        assertThat(logprobs.get("tokens").toString()).isEqualTo("[\"h\",\"�\",\"�\",\"l\",\"lo\",\" world\"]");
        assertThat(ints(logprobs.get("text_offset"))).containsExactly(0, 1, 1, 2, 3, 5);

        // A special token spelled out in a text prompt is echoed as written, so it takes its place.
        JsonNode special = server.postJson("/v1/completions",
                "{\"prompt\": \"<|endoftext|>héllo\", \"max_tokens\": 0, \"echo\": true, \"logprobs\": 0}")
                .at("/choices/0");
        assertThat(special.get("text").asText()).isEqualTo("<|endoftext|>héllo");
        assertThat(special.at("/logprobs/tokens/0").asText()).isEqualTo("<|endoftext|>");
        assertThat(ints(special.at("/logprobs/text_offset"))).containsExactly(0, 13, 14, 14, 15, 16);
    }

    /**
     * Echo and generated tokens through characters of two to four bytes (é, 配, 🙂), whole and
     * streamed. What each token added comes from elsewhere: for the prompt, the text of the prompt's
     * ids up to it (without the bytes of a character not yet complete); for a generated token, its
     * stream chunk's text (without stop strings nothing is held back).
     */
    @Test
    void textOffsetsCountTheTextEachTokenAddedWholeAndStreamed() {
        // A hot sample soon generates a character over several tokens; the first seed whose run does
        // is the one checked for that case (every run is checked for the rest).
        int seed = 0;
        while (checkTextOffsets(seed) == 0) {
            seed++;
            assertThat(seed).as("a seed whose tokens split a character").isLessThan(20);
        }
    }

    /** Checks one seeded run's text offsets; returns how many generated tokens ended inside a character. */
    private static int checkTextOffsets(int seed) {
        String prompt = "Übersetzung: café, crème, déjà, naïve, 🙂";
        String request = "\"prompt\": \"" + prompt + "\", \"max_tokens\": 24, \"temperature\": 1.5, \"seed\": "
                + seed + ", \"echo\": true, \"logprobs\": 0";
        JsonNode whole = server.postJson("/v1/completions", "{" + request + "}").at("/choices/0");
        String text = whole.get("text").asText();
        List<Integer> offsets = ints(whole.at("/logprobs/text_offset"));
        int[] ids = server.model().encode(prompt, true);
        assertThat(offsets).hasSize(ids.length + 24);

        for (int i = 0; i < ids.length; i++) {
            String before = server.model().decode(java.util.Arrays.copyOf(ids, i), true).replaceAll("\uFFFD+$", "");
            assertThat(offsets.get(i)).as("prompt token %d", i).isEqualTo(codePoints(before));
        }
        assertThat(IntStream.range(1, ids.length).filter(i -> offsets.get(i).equals(offsets.get(i - 1))))
                .as("prompt tokens that share an offset: a split character").isNotEmpty();

        List<JsonNode> events = TestServer.events(server.post("/v1/completions",
                "{" + request + ", \"stream\": true}").body());
        StringBuilder streamed = new StringBuilder();
        List<Integer> streamedOffsets = new ArrayList<>();
        int added = codePoints(prompt);
        int emptyTokens = 0;
        for (JsonNode event : events.subList(1, events.size())) {
            JsonNode choice = event.at("/choices/0");
            String piece = choice.get("text").asText();
            if (choice.get("logprobs").isNull()) {
                continue; // the last chunk: what the decoder held back at the end, no token
            }
            int offset = choice.at("/logprobs/text_offset/0").asInt();
            assertThat(offset).as("generated token %d", streamedOffsets.size()).isEqualTo(added);
            assertThat(from(text, offset)).startsWith(piece);
            emptyTokens += piece.isEmpty() ? 1 : 0;
            added += codePoints(piece);
            streamedOffsets.add(offset);
        }
        events.forEach(event -> streamed.append(event.at("/choices/0/text").asText()));
        assertThat(streamed.toString()).isEqualTo(text);
        assertThat(streamedOffsets).isEqualTo(offsets.subList(ids.length, offsets.size()));
        assertThat(ints(events.getFirst().at("/choices/0/logprobs/text_offset")))
                .isEqualTo(offsets.subList(0, ids.length));
        assertThat(offsets).isSorted().allSatisfy(offset -> assertThat(offset).isLessThanOrEqualTo(codePoints(text)));
        return emptyTokens;
    }

    /** A token that the free run generates at index 2 or later, first there, which encodes to itself alone. */
    private record Generated(int index, int id, String text) {
    }

    private static Generated aGeneratedToken(JsonNode tokens) {
        for (int i = 2; i < tokens.size(); i++) {
            String token = tokens.get(i).asText();
            int[] alone = server.model().encode(token, false);
            boolean first = IntStream.range(0, i).noneMatch(j -> tokens.get(j).asText().equals(token));
            if (first && alone.length == 1 && server.model().tokenText(alone[0]).equals(token)) {
                return new Generated(i, alone[0], token);
            }
        }
        throw new AssertionError("no generated token to stop on in " + tokens);
    }

    @Test
    void aStopTokenIdIsPartOfTheOutputAndItsStopReason() {
        String request = "\"prompt\": \"The Debian package manager\", \"max_tokens\": 12, \"temperature\": 0, "
                + "\"logprobs\": 0";
        JsonNode free = server.postJson("/v1/completions", "{" + request + "}").at("/choices/0");
        Generated stop = aGeneratedToken(free.at("/logprobs/tokens"));
        StringBuilder upToStop = new StringBuilder();
        for (int i = 0; i <= stop.index(); i++) {
            upToStop.append(free.at("/logprobs/tokens/" + i).asText());
        }

        String stopping = request + ", \"stop_token_ids\": [" + stop.id() + "]";
        JsonNode whole = server.postJson("/v1/completions", "{" + stopping + "}");
        JsonNode choice = whole.at("/choices/0");
        assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
        assertThat(choice.get("stop_reason").isInt()).as(choice.toString()).isTrue();
        assertThat(choice.get("stop_reason").asInt()).isEqualTo(stop.id());
        assertThat(choice.get("text").asText()).isEqualTo(upToStop.toString()).endsWith(stop.text());
        assertThat(choice.at("/logprobs/tokens")).hasSize(stop.index() + 1);
        assertThat(choice.at("/logprobs/tokens/" + stop.index()).asText()).isEqualTo(stop.text());
        // Within the prefix cache's tolerance: the second request may resume from a snapshot.
        assertThat(choice.at("/logprobs/token_logprobs/" + stop.index()).asDouble())
                .isCloseTo(free.at("/logprobs/token_logprobs/" + stop.index()).asDouble(), within(1e-5));
        assertThat(whole.at("/usage/completion_tokens").asInt()).isEqualTo(stop.index() + 1);

        List<JsonNode> events = TestServer.events(server.post("/v1/completions", "{" + stopping
                + ", \"stream\": true, \"stream_options\": {\"include_usage\": true}}").body());
        StringBuilder streamed = new StringBuilder();
        events.forEach(event -> streamed.append(event.at("/choices/0/text").asText("")));
        JsonNode last = events.get(events.size() - 2).at("/choices/0");
        assertThat(streamed.toString()).isEqualTo(choice.get("text").asText());
        assertThat(last.get("finish_reason").asText()).isEqualTo("stop");
        assertThat(last.get("stop_reason")).isEqualTo(choice.get("stop_reason"));
        assertThat(events.getLast().get("usage")).isEqualTo(whole.get("usage"));

        JsonNode chat = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": "
                + "\"What is dpkg?\"}], \"max_tokens\": 12, \"temperature\": 0, \"logprobs\": true}").at("/choices/0");
        List<String> chatTokens = new ArrayList<>();
        chat.at("/logprobs/content").forEach(entry -> chatTokens.add(entry.get("token").asText()));
        Generated chatStop = aGeneratedToken(TestServer.JSON.valueToTree(chatTokens));
        JsonNode stoppedChat = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", "
                + "\"content\": \"What is dpkg?\"}], \"max_tokens\": 12, \"temperature\": 0, \"stop_token_ids\": ["
                + chatStop.id() + "]}").at("/choices/0");
        assertThat(stoppedChat.get("stop_reason").asInt()).isEqualTo(chatStop.id());
        assertThat(stoppedChat.at("/message/content").asText())
                .isEqualTo(String.join("", chatTokens.subList(0, chatStop.index() + 1)));
    }

    @Test
    void theModelsEndOfSequenceTokenStaysOutOfTheOutputWithNoStopReason() {
        // The demo model ends this answer itself (greedy_reference.json's chat case).
        JsonNode answer = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", "
                + "\"content\": \"What does printf do?\"}], \"max_tokens\": 40, \"temperature\": 0, "
                + "\"logprobs\": true}");
        JsonNode choice = answer.at("/choices/0");

        assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
        assertThat(choice.get("stop_reason").isNull()).isTrue();
        assertThat(choice.at("/logprobs/content").toString()).doesNotContain("<|endoftext|>");
        assertThat(answer.at("/usage/completion_tokens").asInt()).isEqualTo(choice.at("/logprobs/content").size())
                .isLessThan(40);
    }

    @Test
    void aPromptThatFillsTheContextWindowIsScoredWithMaxTokensZero() {
        try (TestServer tiny = TestServer.start(TestServer.TINY_MODEL, ServerOptions.defaults("127.0.0.1", 0),
                TestServer.ENGINE_OPTIONS)) {
            int window = tiny.model().contextLength();
            String ids = IntStream.range(0, window).mapToObj(i -> Integer.toString(1 + i * 7 % 300))
                    .reduce((a, b) -> a + "," + b).orElseThrow();
            JsonNode scored = tiny.postJson("/v1/completions", "{\"prompt\": [" + ids + "], \"max_tokens\": 0, "
                    + "\"echo\": true, \"logprobs\": 0}");

            assertThat(scored.at("/choices/0/logprobs/tokens")).as(scored.toString()).hasSize(window);
            assertThat(scored.at("/choices/0/logprobs/token_logprobs/" + (window - 1)).asDouble()).isNegative();
            assertThat(scored.at("/usage/prompt_tokens").asInt()).isEqualTo(window);
            assertThat(scored.at("/usage/completion_tokens").asInt()).isZero();

            JsonNode tooLong = tiny.postJson("/v1/completions", "{\"prompt\": [5," + ids + "], \"max_tokens\": 0}");
            assertThat(tooLong.at("/error/param").asText()).isEqualTo("prompt");
            JsonNode withTokens = tiny.postJson("/v1/completions", "{\"prompt\": [" + ids + "], \"max_tokens\": 1}");
            assertThat(withTokens.at("/error/param").asText()).isEqualTo("max_tokens");
        }
    }
}
