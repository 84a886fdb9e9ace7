package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.errors.NotFoundException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionNamedToolChoice;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.chat.completions.ChatCompletionTokenLogprob;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionChoice;
import com.openai.models.completions.CompletionCreateParams;
import com.openai.models.conversations.Conversation;
import com.openai.models.conversations.ConversationCreateParams;
import com.openai.models.conversations.ConversationUpdateParams;
import com.openai.models.conversations.items.ItemRetrieveParams;
import com.openai.models.models.Model;
import com.openai.models.responses.EasyInputMessage;
import com.openai.models.responses.Response;
import com.openai.models.responses.ResponseCompletedEvent;
import com.openai.models.responses.ResponseCreateParams;
import com.openai.models.responses.ResponseIncludable;
import com.openai.models.responses.ResponseIncompleteEvent;
import com.openai.models.responses.ResponseStreamEvent;
import com.openai.models.responses.ToolChoiceFunction;
import com.openai.models.responses.inputtokens.InputTokenCountParams;
import dev.coil.server.TestServer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * OpenAI's official Java client against a running server: it must parse every response, and what
 * it reads must agree with the server's raw JSON and with the model (greedy tokens are the most
 * likely ones, usage counts the tokenizer's tokens).
 */
class OpenAiClientTest {

    private static final String PROMPT = "The Debian package manager";
    private static TestServer server;
    private static OpenAIClient client;

    @BeforeAll
    static void start() {
        server = TestServer.start();
        client = OpenAIOkHttpClient.builder().baseUrl(server.url("/v1")).apiKey("unused")
                .timeout(Duration.ofSeconds(60)).maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
    }

    @Test
    void completionWithLogprobsMatchesTheRawResponseAndTheTokenizer() {
        Completion completion = client.completions().create(CompletionCreateParams.builder()
                .model("coil-demo").prompt(PROMPT).maxTokens(12).temperature(0.0).logprobs(3).build());

        JsonNode raw = server.postJson("/v1/completions",
                "{\"prompt\": \"" + PROMPT + "\", \"max_tokens\": 12, \"temperature\": 0}");
        CompletionChoice choice = completion.choices().getFirst();
        assertThat(choice.text()).isEqualTo(raw.at("/choices/0/text").asText()).isNotEmpty();
        assertThat(choice.finishReason()).isEqualTo(CompletionChoice.FinishReason.LENGTH);
        assertThat(completion.model()).isEqualTo("coil-demo");
        int promptTokens = server.postJson("/tokenize", "{\"prompt\": \"" + PROMPT + "\"}").get("count").asInt();
        assertThat(completion.usage().orElseThrow().promptTokens()).isEqualTo(promptTokens);
        assertThat(completion.usage().orElseThrow().completionTokens()).isEqualTo(12);
        assertThat(completion._additionalProperties()).containsKeys("timings", "paths");

        CompletionChoice.Logprobs logprobs = choice.logprobs().orElseThrow();
        List<String> tokens = logprobs.tokens().orElseThrow();
        List<Double> tokenLogprobs = logprobs.tokenLogprobs().orElseThrow();
        assertThat(tokens).hasSize(12);
        assertThat(String.join("", tokens)).isEqualTo(choice.text());
        assertThat(tokenLogprobs).hasSize(12).allSatisfy(lp -> assertThat(lp).isLessThanOrEqualTo(0.0));
        assertThat(logprobs.topLogprobs().orElseThrow()).hasSize(12);
        assertThat(logprobs.textOffset().orElseThrow().getFirst()).isZero();
    }

    @Test
    void chatWithTopLogprobsPicksTheMostLikelyTokenWhenGreedy() {
        ChatCompletion chat = client.chat().completions().create(ChatCompletionCreateParams.builder()
                .model("coil-demo").addUserMessage("What does apt-get do?").maxCompletionTokens(10)
                .temperature(0.0).logprobs(true).topLogprobs(3).build());

        ChatCompletion.Choice choice = chat.choices().getFirst();
        String content = choice.message().content().orElseThrow();
        List<ChatCompletionTokenLogprob> entries = choice.logprobs().orElseThrow().content().orElseThrow();
        assertThat(entries).hasSize(10);
        StringBuilder joined = new StringBuilder();
        for (ChatCompletionTokenLogprob entry : entries) {
            joined.append(entry.token());
            assertThat(entry.topLogprobs()).hasSize(3);
            // Greedy: the chosen token is the first alternative, which is the most likely.
            assertThat(entry.topLogprobs().getFirst().token()).isEqualTo(entry.token());
            assertThat(entry.topLogprobs().getFirst().logprob()).isEqualTo(entry.logprob());
            assertThat(entry.topLogprobs().get(1).logprob()).isLessThanOrEqualTo(entry.logprob());
        }
        assertThat(joined.toString()).isEqualTo(content);
        assertThat(choice.finishReason()).isEqualTo(ChatCompletion.Choice.FinishReason.LENGTH);
    }

    @Test
    void streamedChatEqualsTheWholeAnswerAndEndsWithUsage() {
        ChatCompletionCreateParams params = ChatCompletionCreateParams.builder().model("coil-demo")
                .addSystemMessage("You answer questions about Debian.").addUserMessage("How do I install a package?")
                .maxCompletionTokens(16).temperature(0.7).seed(11).build();
        ChatCompletion answer = client.chat().completions().create(params);
        String whole = answer.choices().getFirst().message().content().orElseThrow();

        StringBuilder streamed = new StringBuilder();
        List<String> finishReasons = new ArrayList<>();
        List<Long> usage = new ArrayList<>();
        try (StreamResponse<ChatCompletionChunk> stream = client.chat().completions().createStreaming(params.toBuilder()
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
            stream.stream().forEach(chunk -> {
                for (ChatCompletionChunk.Choice choice : chunk.choices()) {
                    choice.delta().content().ifPresent(streamed::append);
                    choice.finishReason().ifPresent(reason -> finishReasons.add(reason.asString()));
                }
                chunk.usage().ifPresent(u -> usage.add(u.completionTokens()));
            });
        }
        assertThat(streamed.toString()).isEqualTo(whole).isNotEmpty();
        assertThat(finishReasons).hasSize(1);
        assertThat(usage).containsExactly(answer.usage().orElseThrow().completionTokens());
    }

    /**
     * The client's logit_bias (string ids to integers): +100 on one token makes every generated token
     * that one, in a chat and in a completion; -100 on the greedy choice gives the next most likely.
     */
    @Test
    void logitBiasSteersTheTokens() {
        JsonNode tokenized = server.postJson("/tokenize", "{\"prompt\": \" package\", \"add_special_tokens\": false}");
        assertThat(tokenized.get("tokens")).as("one token").hasSize(1);
        int forced = tokenized.get("tokens").get(0).asInt();
        String thrice = server.postJson("/detokenize", "{\"tokens\": [" + forced + ", " + forced + ", " + forced + "]}")
                .get("prompt").asText();

        ChatCompletion chat = client.chat().completions().create(ChatCompletionCreateParams.builder()
                .model("coil-demo").addUserMessage("What does apt-get do?").maxCompletionTokens(3).temperature(0.7)
                .seed(3).logitBias(ChatCompletionCreateParams.LogitBias.builder()
                        .putAdditionalProperty(String.valueOf(forced), JsonValue.from(100)).build())
                .build());
        assertThat(chat.choices().getFirst().message().content().orElseThrow()).isEqualTo(thrice);

        CompletionCreateParams.Builder completion = CompletionCreateParams.builder().model("coil-demo").prompt(PROMPT)
                .maxTokens(1).temperature(0.0).logprobs(2);
        CompletionChoice free = client.completions().create(completion.build()).choices().getFirst();
        List<Map.Entry<String, Double>> top = topOf(free);
        assertThat(top.get(0).getValue()).as("no tie").isGreaterThan(top.get(1).getValue());
        JsonNode first = server.postJson("/tokenize", "{\"prompt\": " + TestServer.JSON.valueToTree(free.text())
                + ", \"add_special_tokens\": false}").get("tokens");
        assertThat(first).as("one token").hasSize(1);
        CompletionChoice banned = client.completions().create(completion.logitBias(CompletionCreateParams.LogitBias
                .builder().putAdditionalProperty(first.get(0).asText(), JsonValue.from(-100)).build()).build())
                .choices().getFirst();
        assertThat(banned.text()).isEqualTo(top.get(1).getKey());
        // The logprobs are the model's, before the bias. The second request may resume from the prefix
        // cache's snapshot of the first, whose sums round within its documented 1e-5.
        List<Map.Entry<String, Double>> bannedTop = topOf(banned);
        assertThat(bannedTop).extracting(Map.Entry::getKey)
                .containsExactlyElementsOf(top.stream().map(Map.Entry::getKey).toList());
        for (int i = 0; i < top.size(); i++) {
            assertThat(bannedTop.get(i).getValue()).as("logprob %d", i).isCloseTo(top.get(i).getValue(), within(1e-5));
        }
    }

    /** The first position's alternatives, most likely first. */
    private static List<Map.Entry<String, Double>> topOf(CompletionChoice choice) {
        Map<String, JsonValue> alternatives = choice.logprobs().orElseThrow().topLogprobs().orElseThrow().getFirst()
                ._additionalProperties();
        List<Map.Entry<String, Double>> top = new ArrayList<>();
        alternatives.forEach((token, logprob) -> top.add(Map.entry(token, ((Number) logprob.asNumber().orElseThrow())
                .doubleValue())));
        top.sort(Map.Entry.<String, Double>comparingByValue().reversed());
        return top;
    }

    @Test
    void theClientRetrievesTheServedModelAndIsToldOfAnyOther() {
        Model model = client.models().retrieve("coil-demo");
        assertThat(model.id()).isEqualTo("coil-demo");
        assertThat(model.ownedBy()).isEqualTo("coil");
        assertThat(model.created()).isPositive();

        assertThatThrownBy(() -> client.models().retrieve("gpt-4o")).isInstanceOfSatisfying(NotFoundException.class,
                error -> assertThat(error.statusCode()).isEqualTo(404));
    }

    @Test
    void streamedCompletionEqualsTheWholeCompletion() {
        CompletionCreateParams params = CompletionCreateParams.builder().model("coil-demo").prompt(PROMPT)
                .maxTokens(16).temperature(0.9).seed(3).build();
        String whole = client.completions().create(params).choices().getFirst().text();

        StringBuilder streamed = new StringBuilder();
        try (StreamResponse<Completion> stream = client.completions().createStreaming(params)) {
            stream.stream().forEach(chunk -> chunk.choices().forEach(choice -> streamed.append(choice.text())));
        }
        assertThat(streamed.toString()).isEqualTo(whole).isNotEmpty();
    }

    /** What the client's structured outputs turn into a schema: a Java class. */
    public static class Verdict {
        public boolean approved;
        public double score;
        public Level level;
    }

    public enum Level { LOW, MEDIUM, HIGH }

    /**
     * The client's structured outputs: it writes the JSON schema of a Java class (strict mode:
     * every field required, no other key) and reads the answer back into the class.
     */
    @Test
    void theClientsStructuredOutputsComeBackAsItsClass() {
        var params = ChatCompletionCreateParams.builder().model("coil-demo")
                .addUserMessage("Is apt a good package manager?").maxCompletionTokens(120).temperature(0.0)
                .responseFormat(Verdict.class).build();
        var completion = client.chat().completions().create(params);
        var choice = completion.choices().getFirst();
        assertThat(choice.finishReason()).isEqualTo(ChatCompletion.Choice.FinishReason.STOP);
        Verdict verdict = choice.message().content().orElseThrow();
        assertThat(verdict.level).isNotNull();
        assertThat(verdict.score).isNotNaN();
    }

    /** A class whose fields the client's schema gives formats: a date and a UUID. */
    public static class Booking {
        public java.time.LocalDate day;
        public java.util.UUID reference;
    }

    /** Fields with a format come back as what the client's Jackson parses into them. */
    @Test
    void formattedFieldsComeBackAsTheirJavaTypes() {
        var params = ChatCompletionCreateParams.builder().model("coil-demo")
                // The demo model indents with tabs, as many as the grammar allows: room for them.
                .addUserMessage("Book a table for Friday.").maxCompletionTokens(500).temperature(0.0)
                .responseFormat(Booking.class).build();
        var choice = client.chat().completions().create(params).choices().getFirst();
        assertThat(choice.finishReason()).isEqualTo(ChatCompletion.Choice.FinishReason.STOP);
        Booking booking = choice.message().content().orElseThrow();
        assertThat(booking.day).isNotNull();
        assertThat(booking.reference).isNotNull();
    }

    /** A function the client describes from a Java class. */
    public static class SetAlarm {
        public double hour;
        public boolean repeat;
        public Level level;
    }

    /**
     * The client's tools: it writes a function from a Java class, names it as tool_choice, and reads the
     * call's arguments back into the class.
     */
    @Test
    void theClientsNamedToolCallComesBackAsItsClass() {
        var base = ChatCompletionCreateParams.builder().model("coil-demo").addUserMessage("Wake me at seven.")
                .maxCompletionTokens(300).temperature(0.0).addTool(SetAlarm.class);
        String name = base.build().tools().orElseThrow().getFirst().asFunction().function().name();
        var params = base.toolChoice(ChatCompletionNamedToolChoice.builder()
                .function(ChatCompletionNamedToolChoice.Function.builder().name(name).build()).build()).build();
        var choice = client.chat().completions().create(params).choices().getFirst();
        var call = choice.message().toolCalls().orElseThrow().getFirst().asFunction();
        assertThat(call.function().name()).isEqualTo(name);
        SetAlarm alarm = call.function().arguments(SetAlarm.class);
        assertThat(alarm.level).isNotNull();
        assertThat(choice.message().content()).isEmpty();
    }

    /**
     * The Responses API through the client, whole and streamed: every object and event passes the
     * client's validation of its required fields, the text is the chat answer's, and the stream's
     * deltas spell the whole response's text.
     */
    @Test
    void responsesAreTheClientsResponsesAndEvents() {
        var params = ResponseCreateParams.builder().model("coil-demo").input(PROMPT).maxOutputTokens(12L)
                .temperature(0.0).build();
        Response response = client.responses().create(params).validate();
        String text = response.output().getFirst().message().orElseThrow().content().getFirst().outputText()
                .orElseThrow().text();
        JsonNode chat = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \""
                + PROMPT + "\"}], \"max_tokens\": 12, \"temperature\": 0}");
        assertThat(text).isEqualTo(chat.at("/choices/0/message/content").asText()).isNotEmpty();
        assertThat(response.usage().orElseThrow().outputTokens())
                .isEqualTo(chat.at("/usage/completion_tokens").asLong());
        assertThat(response.model().asString()).isEqualTo("coil-demo");

        StringBuilder streamed = new StringBuilder();
        List<ResponseStreamEvent> events = new ArrayList<>();
        try (StreamResponse<ResponseStreamEvent> stream = client.responses().createStreaming(params)) {
            stream.stream().forEach(event -> {
                events.add(event.validate());
                event.outputTextDelta().ifPresent(delta -> streamed.append(delta.delta()));
            });
        }
        assertThat(streamed.toString()).isEqualTo(text);
        assertThat(events.getFirst().created()).isPresent();
        ResponseStreamEvent last = events.getLast();
        Response finalResponse = last.completed().map(ResponseCompletedEvent::response)
                .or(() -> last.incomplete().map(ResponseIncompleteEvent::response)).orElseThrow();
        assertThat(finalResponse.output().getFirst().message().orElseThrow().content().getFirst().outputText()
                .orElseThrow().text()).isEqualTo(text);
    }

    /** A named function through the client's Responses API: the call item and every stream event pass its validation. */
    @Test
    void responsesFunctionCallsAreTheClientsItems() throws Exception {
        var params = ResponseCreateParams.builder().model("coil-demo").input("Wake me at seven.").maxOutputTokens(300L)
                .temperature(0.0).addTool(SetAlarm.class)
                .toolChoice(ToolChoiceFunction.builder().name("SetAlarm").build()).build();
        Response response = client.responses().create(params).validate();
        var call = response.output().getFirst().functionCall().orElseThrow();
        assertThat(call.name()).isEqualTo("SetAlarm");
        StringBuilder streamed = new StringBuilder();
        try (StreamResponse<ResponseStreamEvent> stream = client.responses().createStreaming(params)) {
            stream.stream().forEach(event -> event.validate().functionCallArgumentsDelta()
                    .ifPresent(delta -> streamed.append(delta.delta())));
        }
        assertThat(streamed.toString()).isEqualTo(call.arguments());
        assertThat(TestServer.JSON.readTree(call.arguments()).has("level")).as(call.arguments()).isTrue();
    }

    /**
     * Stored responses through the client: logprobs included, read back by id, continued by
     * previous_response_id, its input items listed, deleted; every object passes the client's validation.
     */
    @Test
    void storedResponsesAreTheClientsToo() {
        Response first = client.responses().create(ResponseCreateParams.builder().model("coil-demo").input(PROMPT)
                .maxOutputTokens(12L).temperature(0.0).include(List.of(ResponseIncludable.MESSAGE_OUTPUT_TEXT_LOGPROBS))
                .topLogprobs(2L).build()).validate();
        var text = first.output().getFirst().message().orElseThrow().content().getFirst().outputText().orElseThrow();
        assertThat(text.logprobs().orElseThrow()).hasSize(12)
                .allSatisfy(logprob -> assertThat(logprob.topLogprobs()).hasSize(2));
        assertThat(String.join("", text.logprobs().orElseThrow().stream().map(logprob -> logprob.token()).toList()))
                .isEqualTo(text.text());

        Response read = client.responses().retrieve(first.id()).validate();
        assertThat(read.id()).isEqualTo(first.id());
        assertThat(read.output().getFirst().message().orElseThrow().content().getFirst().outputText().orElseThrow()
                .text()).isEqualTo(text.text());

        Response second = client.responses().create(ResponseCreateParams.builder().model("coil-demo")
                .previousResponseId(first.id()).input("Another?").maxOutputTokens(4L).temperature(0.0).build())
                .validate();
        assertThat(second.previousResponseId()).contains(first.id());
        var items = client.responses().inputItems().list(second.id());
        assertThat(items.data()).hasSize(1);
        var message = items.data().getFirst().validate().responseInputMessageItem().orElseThrow();
        assertThat(message.content().getFirst().inputText().orElseThrow().text()).isEqualTo("Another?");

        client.responses().delete(first.id());
        assertThatThrownBy(() -> client.responses().retrieve(first.id())).isInstanceOf(NotFoundException.class);

        Response queued = client.responses().create(ResponseCreateParams.builder().model("coil-demo").input(PROMPT)
                .maxOutputTokens(4000L).background(true)
                // Past the end-of-sequence token too, so that it still runs when the cancel arrives.
                .putAdditionalBodyProperty("ignore_eos", JsonValue.from(true)).build()).validate();
        assertThat(queued.status()).hasValueSatisfying(status -> assertThat(status.asString()).isEqualTo("queued"));
        Response cancelled = client.responses().cancel(queued.id()).validate();
        assertThat(cancelled.status()).hasValueSatisfying(status -> assertThat(status.asString()).isEqualTo("cancelled"));
        assertThat(client.responses().retrieve(queued.id()).validate().background()).contains(true);
    }

    /**
     * A conversation through the client: created with an item and metadata, continued by two responses
     * (the second answers as the whole conversation sent as input does), its items listed and read as
     * the client's classes, its metadata replaced, then deleted.
     */
    @Test
    void conversationsAreTheClientsToo() {
        Conversation conversation = client.conversations().create(ConversationCreateParams.builder()
                .metadata(ConversationCreateParams.Metadata.builder()
                        .putAdditionalProperty("topic", JsonValue.from("packages")).build())
                .addItem(EasyInputMessage.builder().role(EasyInputMessage.Role.USER).content(PROMPT).build())
                .build()).validate();
        assertThat(conversation.id()).startsWith("conv_");
        Response first = client.responses().create(ResponseCreateParams.builder().model("coil-demo")
                .conversation(conversation.id()).input("Go on.").maxOutputTokens(6L).temperature(0.0).build())
                .validate();
        assertThat(first.conversation().orElseThrow().id()).isEqualTo(conversation.id());
        Response second = client.responses().create(ResponseCreateParams.builder().model("coil-demo")
                .conversation(conversation.id()).input("Again.").maxOutputTokens(6L).temperature(0.0).build())
                .validate();
        String firstText = first.output().getFirst().message().orElseThrow().content().getFirst().outputText()
                .orElseThrow().text();
        JsonNode whole = server.postJson("/v1/responses", Json.object().put("max_output_tokens", 6)
                .put("temperature", 0).set("input", Json.MAPPER.valueToTree(List.of(
                        Map.of("role", "user", "content", PROMPT), Map.of("role", "user", "content", "Go on."),
                        Map.of("role", "assistant", "content", firstText), Map.of("role", "user", "content", "Again."))))
                .toString());
        assertThat(second.output().getFirst().message().orElseThrow().content().getFirst().outputText().orElseThrow()
                .text()).isEqualTo(whole.at("/output/0/content/0/text").asText());

        long counted = client.responses().inputTokens().count(InputTokenCountParams.builder()
                .conversation(conversation.id()).input("Once more.").build()).validate().inputTokens();
        Response third = client.responses().create(ResponseCreateParams.builder().model("coil-demo")
                .conversation(conversation.id()).input("Once more.").maxOutputTokens(1L).build()).validate();
        assertThat(counted).isEqualTo(third.usage().orElseThrow().inputTokens());

        var items = client.conversations().items().list(conversation.id());
        assertThat(items.data()).hasSize(7);
        var newest = items.data().getFirst().validate().message().orElseThrow();
        assertThat(newest.role().asString()).isEqualTo("assistant");
        assertThat(newest.id()).isEqualTo(third.output().getFirst().message().orElseThrow().id());
        var oldest = client.conversations().items().retrieve(items.data().getLast().validate().message().orElseThrow()
                .id(), ItemRetrieveParams.builder().conversationId(conversation.id()).build()).validate();
        assertThat(oldest.message().orElseThrow().content().getFirst().inputText().orElseThrow().text())
                .isEqualTo(PROMPT);

        Conversation updated = client.conversations().update(conversation.id(), ConversationUpdateParams.builder()
                .metadata(ConversationUpdateParams.Metadata.builder()
                        .putAdditionalProperty("topic", JsonValue.from("done")).build()).build()).validate();
        assertThat(updated._metadata().toString()).contains("done");
        assertThat(client.conversations().delete(conversation.id()).validate().deleted()).isTrue();
        assertThatThrownBy(() -> client.conversations().retrieve(conversation.id()))
                .isInstanceOf(NotFoundException.class);
    }

    /** A streamed background response through the client: its events, read again after one by retrieveStreaming. */
    @Test
    void backgroundStreamsAreReadAgainByTheClient() {
        List<com.openai.models.responses.ResponseStreamEvent> events = new java.util.ArrayList<>();
        try (var stream = client.responses().createStreaming(ResponseCreateParams.builder().model("coil-demo")
                .input(PROMPT).maxOutputTokens(12L).temperature(0.0).background(true).build())) {
            stream.stream().forEach(event -> events.add(event.validate()));
        }
        Response done = lastResponse(events);
        assertThat(done.background()).contains(true);
        List<com.openai.models.responses.ResponseStreamEvent> again = new java.util.ArrayList<>();
        try (var stream = client.responses().retrieveStreaming(done.id(),
                com.openai.models.responses.ResponseRetrieveParams.builder().startingAfter(2L).build())) {
            stream.stream().forEach(event -> again.add(event.validate()));
        }
        assertThat(again).hasSize(events.size() - 3);
        assertThat(again.getFirst().toString()).isEqualTo(events.get(3).toString());
        assertThat(lastResponse(again).id()).isEqualTo(done.id());
    }

    /** The response of a stream's last event: completed, or incomplete when max_output_tokens cut it. */
    private static Response lastResponse(List<com.openai.models.responses.ResponseStreamEvent> events) {
        var last = events.getLast();
        return last.completed().map(event -> event.response())
                .or(() -> last.incomplete().map(event -> event.response())).orElseThrow();
    }
}
