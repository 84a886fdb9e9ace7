package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.TestServer;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Stored responses on the demo model: a response reads back as it was answered (whole or streamed);
 * previous_response_id continues the conversation exactly as sending it whole does (greedy: the same
 * text and prompt tokens), without the previous instructions, through function calls too; input items
 * list as OpenAI pages them; deleted and unstored responses are gone, with OpenAI's errors.
 */
class StoredResponsesTest {

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
    void aResponseReadsBackAsItWasAnswered() {
        JsonNode answered = server.postJson("/v1/responses", """
                {"input": "Name a package manager.", "max_output_tokens": 8, "temperature": 0}""");
        assertThat(answered.get("store").asBoolean()).isTrue();
        assertThat(answered.get("previous_response_id").isNull()).isTrue();
        assertThat(server.getJson("/v1/responses/" + answered.get("id").asText())).isEqualTo(answered);

        List<JsonNode> events = ResponsesTest.events(server.post("/v1/responses", """
                {"input": "Name a package manager.", "max_output_tokens": 8, "temperature": 0, "stream": true}""")
                .body());
        JsonNode last = events.getLast().get("response");
        assertThat(server.getJson("/v1/responses/" + last.get("id").asText())).isEqualTo(last);
        assertThat(last.at("/output/0/content/0/text")).isEqualTo(answered.at("/output/0/content/0/text"));
    }

    /** A chained turn is answered as the whole conversation sent at once is: the same prompt, the same greedy text. */
    @Test
    void previousResponseIdContinuesTheConversation() {
        JsonNode first = server.postJson("/v1/responses", """
                {"instructions": "Answer briefly.", "input": "Name a package manager.", "max_output_tokens": 8,
                 "temperature": 0}""");
        String firstId = first.get("id").asText();
        String firstText = text(first);
        JsonNode second = continued(firstId, "\"instructions\": \"Answer briefly.\", \"input\": \"Another?\"", 10);
        assertThat(second.get("previous_response_id").asText()).isEqualTo(firstId);
        assertAnswersAsChat(server, second, 10, message("system", "Answer briefly."), message("user", "Name a package manager."),
                message("assistant", firstText), message("user", "Another?"));

        // The first turn's instructions are not carried: without its own, the chain has no system message.
        JsonNode bare = continued(firstId, "\"input\": \"Another?\"", 10);
        assertAnswersAsChat(server, bare, 10, message("user", "Name a package manager."), message("assistant", firstText),
                message("user", "Another?"));

        // Three turns: the second's conversation holds the first's.
        JsonNode third = continued(bare.get("id").asText(), "\"input\": \"And a third?\"", 6);
        assertAnswersAsChat(server, third, 6, message("user", "Name a package manager."), message("assistant", firstText),
                message("user", "Another?"), message("assistant", text(bare)), message("user", "And a third?"));
    }

    /** A function call answered, then its output sent with previous_response_id: chat's tool-call conversation. */
    @Test
    void aCallsOutputContinuesTheResponseThatMadeTheCall() {
        JsonNode called = server.postJson("/v1/responses", "{\"input\": \"Wake me at seven.\", \"max_output_tokens\": 40, "
                + "\"temperature\": 0, \"tools\": [{\"type\": \"function\", \"name\": \"set_alarm\", \"parameters\": "
                + ResponsesTest.ALARM + "}], \"tool_choice\": {\"type\": \"function\", \"name\": \"set_alarm\"}}");
        JsonNode call = called.at("/output/0");
        assertThat(call.get("type").asText()).as(called.toString()).isEqualTo("function_call");
        String callId = call.get("call_id").asText();
        JsonNode answered = continued(called.get("id").asText(), "\"input\": [{\"type\": \"function_call_output\", "
                + "\"call_id\": \"" + callId + "\", \"output\": \"set\"}]", 10);
        ObjectNode calling = message("assistant", "");
        calling.putArray("tool_calls").addObject().put("id", callId).put("type", "function").putObject("function")
                .put("name", "set_alarm").put("arguments", call.get("arguments").asText());
        assertAnswersAsChat(server, answered, 10, message("user", "Wake me at seven."), calling,
                message("tool", "set").put("tool_call_id", callId));
    }

    /** A greedy response continuing {@code previousId}, with {@code fields} and a token limit. */
    private static JsonNode continued(String previousId, String fields, int maxTokens) {
        return server.postJson("/v1/responses", "{\"previous_response_id\": \"" + previousId + "\", " + fields
                + ", \"max_output_tokens\": " + maxTokens + ", \"temperature\": 0}");
    }

    /** {@code response} has the text and prompt tokens of the greedy chat answer to {@code messages}. */
    /** Checks {@code response} has the text and prompt tokens of chat's greedy answer to {@code messages}. */
    static void assertAnswersAsChat(TestServer server, JsonNode response, int maxTokens, ObjectNode... messages) {
        ObjectNode request = Json.object().put("max_tokens", maxTokens).put("temperature", 0);
        request.putArray("messages").addAll(List.of(messages));
        JsonNode chat = server.postJson("/v1/chat/completions", request.toString());
        assertThat(text(response)).isEqualTo(chat.at("/choices/0/message/content").asText());
        assertThat(response.at("/usage/input_tokens").asInt()).isEqualTo(chat.at("/usage/prompt_tokens").asInt());
    }

    static ObjectNode message(String role, String content) {
        return Json.object().put("role", role).put("content", content);
    }

    static String text(JsonNode response) {
        return response.at("/output/0/content/0/text").asText();
    }

    /** Input items: the response's own, each with an id, newest first by default, paged by limit and after. */
    @Test
    void inputItemsArePagedAsOpenAiPagesThem() {
        JsonNode first = server.postJson("/v1/responses", """
                {"input": "One.", "max_output_tokens": 2, "temperature": 0}""");
        JsonNode response = server.postJson("/v1/responses", "{\"previous_response_id\": \"" + first.get("id").asText()
                + "\", \"input\": [{\"role\": \"user\", \"content\": \"Two.\"}, {\"type\": \"message\", \"id\": \"msg_given\","
                + " \"role\": \"assistant\", \"content\": [{\"type\": \"output_text\", \"text\": \"Three.\"}]}, "
                + "{\"role\": \"developer\", \"content\": [{\"type\": \"input_text\", \"text\": \"Four.\"}]}], "
                + "\"max_output_tokens\": 2, \"temperature\": 0}");
        String path = "/v1/responses/" + response.get("id").asText() + "/input_items";

        JsonNode page = server.getJson(path);
        assertThat(page.get("object").asText()).isEqualTo("list");
        assertThat(texts(page)).containsExactly("Four.", "Three.", "Two.");
        assertThat(page.at("/data/1/id").asText()).isEqualTo("msg_given");
        assertThat(page.at("/data/1/content/0/type").asText()).isEqualTo("output_text");
        assertThat(page.at("/data/2/content/0/type").asText()).isEqualTo("input_text");
        assertThat(page.at("/data/0/role").asText()).isEqualTo("developer");
        page.get("data").forEach(item -> assertThat(item.get("id").asText()).startsWith("msg_"));
        assertThat(page.get("first_id")).isEqualTo(page.at("/data/0/id"));
        assertThat(page.get("last_id")).isEqualTo(page.at("/data/2/id"));
        assertThat(page.get("has_more").asBoolean()).isFalse();

        JsonNode ascending = server.getJson(path + "?order=asc&limit=2");
        assertThat(texts(ascending)).containsExactly("Two.", "Three.");
        assertThat(ascending.get("has_more").asBoolean()).isTrue();
        JsonNode rest = server.getJson(path + "?order=asc&limit=2&after=" + ascending.get("last_id").asText());
        assertThat(texts(rest)).containsExactly("Four.");
        assertThat(rest.get("has_more").asBoolean()).isFalse();

        JsonNode string = server.getJson("/v1/responses/" + first.get("id").asText() + "/input_items");
        assertThat(texts(string)).containsExactly("One.");
        assertThat(string.at("/data/0/id").asText()).startsWith("msg_");
        assertThat(string.at("/data/0/role").asText()).isEqualTo("user");
        assertThat(string.at("/data/0/status").asText()).isEqualTo("completed");
        TestServer.assertError(server.get(path + "?limit=0"), 400, "limit must be an integer from 1 to 100");
        TestServer.assertError(server.get(path + "?order=up"), 400, "order must be \"asc\" or \"desc\"");
    }

    @Test
    void deletedAndUnstoredResponsesAreGone() {
        JsonNode answered = server.postJson("/v1/responses", """
                {"input": "Name a package manager.", "max_output_tokens": 2, "temperature": 0}""");
        String id = answered.get("id").asText();
        HttpResponse<String> deleted = server.delete("/v1/responses/" + id);
        assertThat(deleted.statusCode()).isEqualTo(200);
        JsonNode body = TestServer.parse(deleted.body());
        assertThat(body.get("id").asText()).isEqualTo(id);
        assertThat(body.get("deleted").asBoolean()).isTrue();
        TestServer.assertError(server.get("/v1/responses/" + id), 404, "Response with id '" + id + "' not found.");
        TestServer.assertError(server.delete("/v1/responses/" + id), 404, "not found");
        HttpResponse<String> chained = server.post("/v1/responses", "{\"previous_response_id\": \"" + id
                + "\", \"input\": \"x\"}");
        TestServer.assertError(chained, 400, "Previous response with id '" + id + "' not found.");
        assertThat(TestServer.parse(chained.body()).at("/error/code").asText()).isEqualTo("previous_response_not_found");
        assertThat(TestServer.parse(chained.body()).at("/error/param").asText()).isEqualTo("previous_response_id");

        JsonNode unstored = server.postJson("/v1/responses", """
                {"input": "Name a package manager.", "max_output_tokens": 2, "temperature": 0, "store": false}""");
        assertThat(unstored.get("store").asBoolean()).isFalse();
        TestServer.assertError(server.get("/v1/responses/" + unstored.get("id").asText()), 404, "not found");

        JsonNode kept = server.postJson("/v1/responses", """
                {"input": "Name a package manager.", "max_output_tokens": 2, "temperature": 0}""");
        String keptPath = "/v1/responses/" + kept.get("id").asText();
        TestServer.assertError(server.post(keptPath + "/cancel", ""), 400, "only background responses can be cancelled");
        TestServer.assertError(server.get(keptPath + "?stream=true"), 400, "only a background response created with stream");
        assertThat(server.getJson(keptPath)).isEqualTo(kept);
    }

    /**
     * background: true answers the queued response at once; polled, it ends completed with the answer
     * the same request gets without background (greedy); one cancelled while it runs ends cancelled.
     */
    @Test
    void backgroundResponsesRunOnAndCanBeCancelled() throws InterruptedException {
        String request = "\"input\": \"Name a package manager.\", \"max_output_tokens\": 12, \"temperature\": 0";
        JsonNode queued = server.postJson("/v1/responses", "{" + request + ", \"background\": true}");
        assertThat(queued.get("status").asText()).isEqualTo("queued");
        assertThat(queued.get("background").asBoolean()).isTrue();
        assertThat(queued.get("output")).isEmpty();
        JsonNode done = poll(queued.get("id").asText());
        assertThat(done.get("status").asText()).isIn("completed", "incomplete");
        JsonNode alone = server.postJson("/v1/responses", "{" + request + "}");
        assertThat(text(done)).isEqualTo(text(alone)).isNotEmpty();
        assertThat(done.at("/usage/output_tokens")).isEqualTo(alone.at("/usage/output_tokens"));
        assertThat(done.get("background").asBoolean()).isTrue();
        HttpResponse<String> again = server.post("/v1/responses/" + queued.get("id").asText() + "/cancel", "");
        assertThat(again.statusCode()).as("an ended background response is answered as it is").isEqualTo(200);
        assertThat(TestServer.parse(again.body())).isEqualTo(done);

        JsonNode longOne = server.postJson("/v1/responses", "{\"input\": \"Name a package manager.\", "
                + "\"max_output_tokens\": 4000, \"ignore_eos\": true, \"background\": true}");
        HttpResponse<String> cancelled = server.post("/v1/responses/" + longOne.get("id").asText() + "/cancel", "");
        assertThat(cancelled.statusCode()).isEqualTo(200);
        assertThat(TestServer.parse(cancelled.body()).get("status").asText()).isEqualTo("cancelled");
        assertThat(server.getJson("/v1/responses/" + longOne.get("id").asText()).get("status").asText()).isEqualTo("cancelled");

        server.assertRefused("/v1/responses", "{" + request + ", \"background\": true, \"store\": false}", "background",
                "background responses need store: true");
    }

    /**
     * background with stream: the same events as the foreground stream of the same request (greedy),
     * numbered from 0; read again whole or after an event by GET ?stream=true&starting_after, while it
     * runs and after; a reader that goes away does not stop it.
     */
    @Test
    void backgroundResponsesStreamAndAreReadAgain() throws Exception {
        String request = "\"input\": \"Name a package manager.\", \"max_output_tokens\": 12, \"temperature\": 0, "
                + "\"stream\": true";
        List<JsonNode> foreground = ResponsesTest.events(server.post("/v1/responses", "{" + request + "}").body());
        HttpResponse<String> posted = server.post("/v1/responses", "{" + request + ", \"background\": true}");
        assertThat(posted.statusCode()).isEqualTo(200);
        assertThat(posted.headers().firstValue("content-type").orElse("")).startsWith("text/event-stream");
        List<JsonNode> background = ResponsesTest.events(posted.body());
        assertThat(shapes(background)).isEqualTo(shapes(foreground));
        JsonNode last = background.getLast().get("response");
        assertThat(last.get("status").asText()).isIn("completed", "incomplete");
        assertThat(last.get("background").asBoolean()).isTrue();
        assertThat(text(last)).isEqualTo(text(foreground.getLast().get("response"))).isNotEmpty();
        String id = last.get("id").asText();
        assertThat(server.getJson("/v1/responses/" + id)).isEqualTo(last);

        assertThat(ResponsesTest.events(server.get("/v1/responses/" + id + "?stream=true").body()))
                .isEqualTo(background);
        List<JsonNode> after = eventsAfter(server.get("/v1/responses/" + id + "?stream=true&starting_after=3").body());
        assertThat(after).isEqualTo(background.subList(4, background.size()));

        TestServer.assertError(server.get("/v1/responses/" + id + "?stream=true&starting_after=x"), 400, "starting_after must be");
        TestServer.assertError(server.get("/v1/responses/" + id + "?starting_after=2"), 400, "starting_after applies to stream");
        String whole = server.postJson("/v1/responses", "{\"input\": \"x\", \"max_output_tokens\": 2}")
                .get("id").asText();
        TestServer.assertError(server.get("/v1/responses/" + whole + "?stream=true"), 400, "only a background response");
        assertThat(server.get("/v1/responses/resp_none?stream=true").statusCode()).isEqualTo(404);

        // A reader that leaves after the first events: the response runs to its end, and reads whole again.
        HttpRequest longRequest = HttpRequest.newBuilder(URI.create(server.url("/v1/responses")))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"input\": \"Name a package manager.\", "
                        + "\"max_output_tokens\": 48, \"ignore_eos\": true, \"temperature\": 0, \"stream\": true, "
                        + "\"background\": true}")).build();
        String longId;
        try (java.util.stream.Stream<String> lines = server.http().send(longRequest,
                HttpResponse.BodyHandlers.ofLines()).body()) {
            longId = TestServer.parse(lines.filter(line -> line.startsWith("data: ")).findFirst().orElseThrow()
                    .substring("data: ".length())).at("/response/id").asText();
        }
        JsonNode done = poll(longId);
        assertThat(done.get("status").asText()).isEqualTo("incomplete");
        assertThat(done.at("/usage/output_tokens").asInt()).isEqualTo(48);
        List<JsonNode> replayed = ResponsesTest.events(server.get("/v1/responses/" + longId + "?stream=true").body());
        assertThat(replayed.getLast().get("response")).isEqualTo(done);
    }

    /** Each event's type and delta: what two streams of the same greedy answer share (ids and times differ). */
    private static List<String> shapes(List<JsonNode> events) {
        List<String> shapes = new ArrayList<>();
        for (JsonNode event : events) {
            shapes.add(event.get("type").asText() + ":" + event.path("delta").asText("")
                    + ":" + event.get("sequence_number").asInt());
        }
        return shapes;
    }

    /** The events of a stream read after some sequence_number: numbered on from it, one by one. */
    private static List<JsonNode> eventsAfter(String body) {
        List<JsonNode> events = new ArrayList<>();
        for (String block : body.split("\n\n")) {
            JsonNode event = TestServer.parse(block.split("\n", 2)[1].substring("data: ".length()));
            if (!events.isEmpty()) {
                assertThat(event.get("sequence_number").asInt())
                        .isEqualTo(events.getLast().get("sequence_number").asInt() + 1);
            }
            events.add(event);
        }
        return events;
    }

    /** The response {@code id} once it has ended, polled every 50 ms for up to a minute. */
    private static JsonNode poll(String id) throws InterruptedException {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (true) {
            JsonNode response = server.getJson("/v1/responses/" + id);
            String status = response.get("status").asText();
            if (!status.equals("queued") && !status.equals("in_progress") || System.nanoTime() > deadline) {
                return response;
            }
            Thread.sleep(50);
        }
    }

    private static List<String> texts(JsonNode page) {
        List<String> texts = new ArrayList<>();
        page.get("data").forEach(item -> texts.add(item.at("/content/0/text").asText()));
        return texts;
    }
}
