package dev.coil.server.api;

import static dev.coil.server.api.StoredResponsesTest.assertAnswersAsChat;
import static dev.coil.server.api.StoredResponsesTest.message;
import static dev.coil.server.api.StoredResponsesTest.text;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServerOptions;
import dev.coil.server.TestServer;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Conversations on the demo model: a response in a conversation is answered as the whole
 * conversation sent at once is (greedy: the same text and prompt tokens), and its input and output
 * items join the conversation, streamed or not, stored or not; a cancelled one adds nothing. The
 * items API creates, lists (as OpenAI pages), reads and deletes items; every wrong request is a 400
 * or 404 naming what is wrong, and nothing changes.
 */
class ConversationsTest {

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
    void aResponseInAConversationIsAnsweredAsTheWholeConversationIs() {
        JsonNode conversation = server.postJson("/v1/conversations", """
                {"metadata": {"topic": "tools"}, "items": [{"role": "user", "content": "Name a package manager."}]}""");
        String id = conversation.get("id").asText();
        assertThat(conversation.get("object").asText()).isEqualTo("conversation");
        assertThat(conversation.at("/metadata/topic").asText()).isEqualTo("tools");

        // The first turn: the conversation's item, then the input.
        JsonNode first = server.postJson("/v1/responses", "{\"conversation\": \"" + id + "\", \"input\": \"Briefly.\", "
                + "\"max_output_tokens\": 8, \"temperature\": 0}");
        assertThat(first.at("/conversation/id").asText()).isEqualTo(id);
        assertThat(first.get("previous_response_id").isNull()).isTrue();
        assertAnswersAsChat(server, first, 8, message("user", "Name a package manager."), message("user", "Briefly."));

        // The second, with the conversation given as {"id"}, streamed: the first turn's items are in it.
        List<JsonNode> events = ResponsesTest.events(server.post("/v1/responses", "{\"conversation\": {\"id\": \"" + id
                + "\"}, \"input\": \"Another?\", \"max_output_tokens\": 10, \"temperature\": 0, \"stream\": true}")
                .body());
        JsonNode second = events.getLast().get("response");
        assertThat(second.at("/conversation/id").asText()).isEqualTo(id);
        assertAnswersAsChat(server, second, 10, message("user", "Name a package manager."), message("user", "Briefly."),
                message("assistant", text(first)), message("user", "Another?"));

        // The conversation holds each turn's input, then its output, in order.
        List<JsonNode> items = new ArrayList<>();
        server.getJson("/v1/conversations/" + id + "/items?order=asc").get("data").forEach(items::add);
        assertThat(items).hasSize(5);
        assertThat(items.get(0).at("/content/0/text").asText()).isEqualTo("Name a package manager.");
        assertThat(items.get(1).at("/content/0/text").asText()).isEqualTo("Briefly.");
        assertThat(items.get(2)).isEqualTo(first.at("/output/0"));
        assertThat(items.get(3).at("/content/0/text").asText()).isEqualTo("Another?");
        assertThat(items.get(4)).isEqualTo(second.at("/output/0"));
        assertThat(server.getJson("/v1/conversations/" + id)).isEqualTo(conversation);

        // A response that is not stored still continues the conversation; one cut at max_output_tokens too.
        JsonNode unstored = server.postJson("/v1/responses", "{\"conversation\": \"" + id + "\", \"input\": \"More.\", "
                + "\"max_output_tokens\": 1, \"temperature\": 0, \"store\": false}");
        assertThat(unstored.get("status").asText()).isEqualTo("incomplete");
        assertThat(server.getJson("/v1/conversations/" + id + "/items?order=asc").get("data")).hasSize(7);
        assertThat(server.getJson("/v1/conversations/" + id + "/items").at("/data/0")).isEqualTo(unstored.at("/output/0"));
    }

    @Test
    void aCancelledBackgroundResponseAddsNothing() throws InterruptedException {
        String id = server.postJson("/v1/conversations", "{}").get("id").asText();
        JsonNode queued = server.postJson("/v1/responses", "{\"conversation\": \"" + id + "\", \"input\": \"Count.\", "
                + "\"max_output_tokens\": 4000, \"ignore_eos\": true, \"background\": true}");
        JsonNode cancelled = server.postJson("/v1/responses/" + queued.get("id").asText() + "/cancel", "");
        assertThat(cancelled.get("status").asText()).isEqualTo("cancelled");
        assertThat(server.getJson("/v1/conversations/" + id + "/items").get("data")).isEmpty();

        // A background response that completes joins it once it has.
        JsonNode background = server.postJson("/v1/responses", "{\"conversation\": \"" + id + "\", \"input\": \"Hi.\", "
                + "\"max_output_tokens\": 3, \"temperature\": 0, \"background\": true}");
        String path = "/v1/responses/" + background.get("id").asText();
        JsonNode done = server.getJson(path);
        for (int polls = 0; polls < 600 && !done.get("status").asText().matches("completed|incomplete"); polls++) {
            Thread.sleep(50);
            done = server.getJson(path);
        }
        assertThat(server.getJson("/v1/conversations/" + id + "/items?order=asc").get("data")).hasSize(2);
        assertThat(server.getJson("/v1/conversations/" + id + "/items").at("/data/0")).isEqualTo(done.at("/output/0"));
    }

    /**
     * One response at a time continues a conversation: another, streamed or not, is refused while the
     * first runs (OpenAI's conversation_locked) and changes nothing; the conversation is free again
     * once the first has ended, however it ended: cancelled, completed, refused, or its client gone.
     */
    @Test
    void aConversationIsContinuedByOneResponseAtATime() throws Exception {
        String id = server.postJson("/v1/conversations", "{}").get("id").asText();
        String turn = "{\"conversation\": \"" + id + "\", \"input\": \"Hi.\", \"max_output_tokens\": 2, "
                + "\"temperature\": 0";
        String longTurn = "{\"conversation\": \"" + id + "\", \"input\": \"Count.\", \"max_output_tokens\": 4000, "
                + "\"ignore_eos\": true";
        JsonNode running = server.postJson("/v1/responses", longTurn + ", \"background\": true}");
        for (String second : List.of(turn + "}", turn + ", \"stream\": true}", turn + ", \"background\": true}",
                "{\"conversation\": {\"id\": \"" + id + "\"}, \"input\": \"Hi.\"}")) {
            assertLocked(second);
        }
        // Counting tokens, the items API and other conversations go on meanwhile.
        assertThat(server.postJson("/v1/responses/input_tokens", turn + "}").get("input_tokens").asInt()).isPositive();
        assertThat(server.getJson("/v1/conversations/" + id + "/items").get("data")).isEmpty();
        String other = server.postJson("/v1/conversations", "{}").get("id").asText();
        assertThat(server.postJson("/v1/responses", turn.replace(id, other) + "}").get("status").asText())
                .isEqualTo("incomplete");

        // Cancelled: free again, and the next turn is the conversation's first.
        server.postJson("/v1/responses/" + running.get("id").asText() + "/cancel", "");
        JsonNode next = server.postJson("/v1/responses", turn + "}");
        assertThat(next.get("status").asText()).isEqualTo("incomplete");
        assertThat(server.getJson("/v1/conversations/" + id + "/items").get("data")).hasSize(2);

        // Completed turns one after another, streamed or not, never find it locked (the loop's 400s would fail).
        for (int i = 0; i < 3; i++) {
            server.postJson("/v1/responses", turn + "}");
            ResponsesTest.events(server.post("/v1/responses", turn + ", \"stream\": true}").body());
        }
        assertThat(server.getJson("/v1/conversations/" + id + "/items?limit=100").get("data")).hasSize(14);

        // Refused requests leave it free.
        server.assertRefused("/v1/responses", turn + ", \"previous_response_id\": \"" + next.get("id").asText() + "\"}",
                "conversation", "cannot both be given");
        server.assertRefused("/v1/responses", turn + ", \"temperature\": -1}", "temperature", "temperature");
        TestServer.assertError(server.post("/v1/responses", turn.replace(id, "conv_none") + "}"), 404,
                "Conversation with id 'conv_none' not found.");
        assertThat(server.postJson("/v1/responses", turn + "}").get("status").asText()).isEqualTo("incomplete");

        // A streamed turn whose client goes away: locked while it streams, free once the server saw it gone.
        String body = longTurn + ", \"stream\": true}";
        try (Socket socket = server.openPost("/v1/responses", body)) {
            BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
            assertThat(in.readLine()).isEqualTo("HTTP/1.1 200 OK");
            for (int events = 0; events < 5; ) {
                events += in.readLine().startsWith("data: ") ? 1 : 0;
            }
            assertLocked(turn + "}");
        }
        long deadline = System.nanoTime() + 30_000_000_000L;
        HttpResponse<String> after = server.post("/v1/responses", turn + "}");
        while (after.statusCode() == 400 && after.body().contains("conversation_locked")) {
            assertThat(System.nanoTime()).as("waiting for the gone client's response to end").isLessThan(deadline);
            Thread.sleep(20);
            after = server.post("/v1/responses", turn + "}");
        }
        assertThat(after.statusCode()).as(after.body()).isEqualTo(200);
    }

    /** Checks that a response continuing a conversation is refused as locked. */
    private static void assertLocked(String body) {
        HttpResponse<String> refused = server.post("/v1/responses", body);
        TestServer.assertError(refused, 400, "still running");
        JsonNode error = TestServer.parse(refused.body()).get("error");
        assertThat(error.get("code").asText()).as(body).isEqualTo("conversation_locked");
        assertThat(error.get("param").asText()).isEqualTo("conversation");
    }

    /** POST /v1/responses/input_tokens counts what the same fields give a response as its prompt. */
    @Test
    void inputTokensAreTheTokensAResponseReads() {
        String id = server.postJson("/v1/conversations", """
                {"items": [{"role": "user", "content": "Name a package manager."}]}""").get("id").asText();
        for (String fields : List.of("\"input\": \"Briefly.\"",
                "\"instructions\": \"Answer in one word.\", \"input\": [{\"role\": \"user\", \"content\": \"Hi.\"}]",
                "\"conversation\": \"" + id + "\", \"input\": \"Again.\"",
                "\"tools\": [{\"type\": \"function\", \"name\": \"alarm\", \"parameters\": {\"type\": \"object\"}}], "
                        + "\"tool_choice\": \"required\", \"input\": \"Wake me.\"")) {
            JsonNode count = server.postJson("/v1/responses/input_tokens", "{" + fields + "}");
            assertThat(count.get("object").asText()).isEqualTo("response.input_tokens");
            JsonNode response = server.postJson("/v1/responses", "{" + fields + ", \"max_output_tokens\": 1}");
            assertThat(count.get("input_tokens").asInt()).as(fields).isPositive()
                    .isEqualTo(response.at("/usage/input_tokens").asInt());
        }
        // Counting adds nothing to the conversation: only the response above did.
        assertThat(server.getJson("/v1/conversations/" + id + "/items").get("data")).hasSize(3);
        server.assertRefused("/v1/responses/input_tokens", "{\"input\": \"x\", \"conversation\": 1}", "conversation",
                "conversation must be");
        TestServer.assertError(server.post("/v1/responses/input_tokens",
                "{\"input\": \"x\", \"conversation\": \"conv_none\"}"), 404, "Conversation with id 'conv_none' not found.");
    }

    @Test
    void itemsAreAddedListedReadAndDeletedAsOpenAiDoes() {
        JsonNode conversation = server.postJson("/v1/conversations", """
                {"items": [{"role": "user", "content": "One."}, {"type": "message", "id": "msg_two", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Two."}]}]}""");
        String id = conversation.get("id").asText();
        assertThat(conversation.get("metadata")).isEqualTo(Json.object());
        String path = "/v1/conversations/" + id + "/items";

        JsonNode added = server.postJson(path, """
                {"items": [{"type": "function_call", "call_id": "call_1", "name": "alarm", "arguments": "{}"},
                 {"type": "function_call_output", "call_id": "call_1", "output": "set"}]}""");
        assertThat(added.get("object").asText()).isEqualTo("list");
        assertThat(added.get("data")).hasSize(2);
        assertThat(added.at("/data/0/id").asText()).startsWith("fc_");
        assertThat(added.get("has_more").asBoolean()).isFalse();

        JsonNode newest = server.getJson(path + "?limit=2");
        assertThat(newest.get("data")).hasSize(2);
        assertThat(newest.at("/data/0/type").asText()).isEqualTo("function_call_output");
        assertThat(newest.get("has_more").asBoolean()).isTrue();
        JsonNode rest = server.getJson(path + "?limit=2&after=" + newest.get("last_id").asText());
        assertThat(rest.at("/data/0/id").asText()).isEqualTo("msg_two");
        assertThat(rest.get("has_more").asBoolean()).isFalse();

        JsonNode two = server.getJson(path + "/msg_two");
        assertThat(two.at("/content/0/text").asText()).isEqualTo("Two.");
        assertThat(two.get("status").asText()).isEqualTo("completed");
        assertThat(TestServer.parse(server.delete(path + "/msg_two").body())).isEqualTo(conversation);
        TestServer.assertError(server.get(path + "/msg_two"), 404, "Item with id 'msg_two' not found");
        assertThat(server.getJson(path).get("data")).hasSize(3);

        JsonNode updated = server.postJson("/v1/conversations/" + id, "{\"metadata\": {\"state\": \"done\"}}");
        assertThat(updated.get("metadata")).isEqualTo(Json.object().put("state", "done"));
        assertThat(server.getJson("/v1/conversations/" + id)).isEqualTo(updated);

        JsonNode deleted = TestServer.parse(server.delete("/v1/conversations/" + id).body());
        assertThat(deleted).isEqualTo(Json.object().put("id", id).put("object", "conversation.deleted")
                .put("deleted", true));
        TestServer.assertError(server.get("/v1/conversations/" + id), 404, "Conversation with id '" + id + "' not found.");
        TestServer.assertError(server.get(path), 404, "not found");
        TestServer.assertError(server.post(path, "{\"items\": [{\"role\": \"user\", \"content\": \"x\"}]}"), 404, "not found");
        TestServer.assertError(server.delete("/v1/conversations/" + id), 404, "not found");
        HttpResponse<String> gone = server.post("/v1/responses", "{\"conversation\": \"" + id + "\", \"input\": \"x\"}");
        TestServer.assertError(gone, 404, "Conversation with id '" + id + "' not found.");
        assertThat(TestServer.parse(gone.body()).at("/error/param").asText()).isEqualTo("conversation");
    }

    @Test
    void wrongRequestsAreRefusedAndChangeNothing() {
        String id = server.postJson("/v1/conversations", "{}").get("id").asText();
        JsonNode first = server.postJson("/v1/responses", """
                {"input": "One.", "max_output_tokens": 2, "temperature": 0}""");
        server.assertRefused("/v1/responses", "{\"conversation\": \"" + id + "\", \"previous_response_id\": \""
                + first.get("id").asText() + "\", \"input\": \"x\"}", "conversation", "cannot both be given");
        server.assertRefused("/v1/responses", "{\"conversation\": 7, \"input\": \"x\"}", "conversation",
                "conversation must be a conversation's id");
        String path = "/v1/conversations/" + id + "/items";
        server.assertRefused(path, "{\"items\": []}", "items", "non-empty array");
        server.assertRefused(path, "{\"items\": [{\"role\": \"robot\", \"content\": \"x\"}]}", "items",
                "items[0].role must be");
        server.assertRefused(path, "{\"items\": [{\"type\": \"web_search_call\"}]}", "items",
                "items[0]: items of type \"web_search_call\" are not supported");
        StringBuilder many = new StringBuilder("{\"items\": [");
        for (int i = 0; i < 21; i++) {
            many.append(i == 0 ? "" : ", ").append("{\"role\": \"user\", \"content\": \"x\"}");
        }
        server.assertRefused(path, many.append("]}").toString(), "items", "at most 20 items");
        server.assertRefused("/v1/conversations", many.toString(), "items", "at most 20 items");
        server.assertRefused("/v1/conversations", "{\"metadata\": {\"k\": 1}}", "metadata", "metadata.k must be a string");
        server.assertRefused("/v1/conversations/" + id, "{}", "metadata", "metadata is required");
        TestServer.assertError(server.get(path + "?limit=0"), 400, "limit must be an integer from 1 to 100");
        TestServer.assertError(server.get(path + "?order=up"), 400, "order must be \"asc\" or \"desc\"");
        TestServer.assertError(server.get(path + "?after=msg_none"), 400, "no item msg_none in conversation " + id);
        assertThat(server.getJson(path).get("data")).isEmpty();
    }

    /**
     * truncation "auto": a conversation longer than the context window is answered over its last items,
     * as few dropped as make the prompt and max_output_tokens fit (checked against /tokenize's counts
     * and chat's greedy answer over the same messages); "disabled", the default, refuses it. The
     * conversation keeps every item.
     */
    @Test
    void truncationAutoDropsTheFirstItemsUntilThePromptFits() {
        int window = 96;
        int maxTokens = 8;
        try (TestServer small = TestServer.start(ServerOptions.defaults("127.0.0.1", 0),
                TestServer.ENGINE_OPTIONS.withMaxModelLength(window))) {
            List<ObjectNode> messages = new ArrayList<>();
            for (int i = 1; i <= 6; i++) {
                messages.add(message("user", "Tell me about package number " + i + "."));
                messages.add(message("assistant", "Package " + i + " is a small tool for the shell."));
            }
            ObjectNode created = Json.object();
            created.putArray("items").addAll(messages);
            String id = small.postJson("/v1/conversations", created.toString()).get("id").asText();
            messages.add(message("user", "Which one is best?"));
            String request = "{\"conversation\": \"" + id + "\", \"input\": \"Which one is best?\", \"max_output_tokens\": "
                    + maxTokens + ", \"temperature\": 0";
            TestServer.assertError(small.post("/v1/responses", request + "}"), 400, "context window");

            int dropped = 0;
            while (promptTokens(small, messages.subList(dropped, messages.size())) + maxTokens > window) {
                dropped++;
            }
            assertThat(dropped).isBetween(1, messages.size() - 2);
            JsonNode truncated = small.postJson("/v1/responses", request + ", \"truncation\": \"auto\"}");
            assertThat(truncated.get("truncation").asText()).isEqualTo("auto");
            assertThat(truncated.at("/usage/input_tokens").asInt())
                    .isEqualTo(promptTokens(small, messages.subList(dropped, messages.size())));
            assertAnswersAsChat(small, truncated, maxTokens,
                    messages.subList(dropped, messages.size()).toArray(ObjectNode[]::new));
            assertThat(small.getJson("/v1/conversations/" + id + "/items?limit=100").get("data")).hasSize(14);
            small.assertRefused("/v1/responses", "{\"input\": \"x\", \"truncation\": \"sometimes\"}", "truncation",
                    "truncation must be \"auto\" or \"disabled\"");
        }
    }

    /** The prompt tokens of {@code messages} rendered with the generation prompt, by /tokenize. */
    private static int promptTokens(TestServer server, List<ObjectNode> messages) {
        ObjectNode request = Json.object().put("add_generation_prompt", true);
        request.putArray("messages").addAll(messages);
        return server.postJson("/tokenize", request.toString()).get("count").asInt();
    }

    @Test
    void aServerThatStoresNothingKeepsNoConversations() {
        try (TestServer none = TestServer.start(ServerOptions.defaults("127.0.0.1", 0).withResponseStoreBytes(0),
                TestServer.ENGINE_OPTIONS)) {
            HttpResponse<String> refused = none.post("/v1/conversations", "{}");
            TestServer.assertError(refused, 400, "this server keeps no conversations (--response-store 0)");
            TestServer.assertError(none.post("/v1/responses", "{\"conversation\": \"conv_x\", \"input\": \"x\"}"), 404,
                    "Conversation with id 'conv_x' not found.");
        }
    }
}
