package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent;
import dev.coil.engine.runner.FinishReason;
import dev.coil.engine.runner.RequestTimings;
import dev.coil.engine.runner.TokenLogprob;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Which tokens' logprobs a Responses message carries when the answer mixes reasoning, text and a call,
 * cut into tokens every which way: every token that lies inside the message's text is there, in order,
 * and none that lies inside the reasoning or the call's arguments.
 */
class ResponsesAnswerTest {

    private static final String REASONING = "Paris, then.";
    private static final String TEXT = "\n\nChecking the weather.";
    private static final String CALL = "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"
            + "</tool_call>";
    private static final String OUTPUT = REASONING + "</think>" + TEXT + "\n" + CALL;

    @Test
    void theMessageCarriesTheLogprobsOfItsOwnTokens() {
        Random random = new Random(11);
        int textStart = OUTPUT.indexOf(TEXT);
        int textEnd = textStart + TEXT.length();
        int argumentsStart = OUTPUT.indexOf("{\"city\"");
        for (int trial = 0; trial < 200; trial++) {
            List<String> tokens = StreamCuts.random(OUTPUT, random);
            JsonNode response = whole(tokens);
            assertThat(response.at("/output/0/type").asText()).isEqualTo("reasoning");
            JsonNode message = response.at("/output/1");
            assertThat(message.at("/content/0/text").asText()).as("%s", tokens).isEqualTo(TEXT);
            assertThat(response.at("/output/2/type").asText()).isEqualTo("function_call");

            List<Integer> carried = new ArrayList<>();
            message.at("/content/0/logprobs").forEach(entry ->
                    carried.add(Integer.parseInt(entry.get("token").asText().substring("token_id:".length()))));
            assertThat(carried).as("%s", tokens).isSorted().doesNotHaveDuplicates();
            Set<Integer> inText = new HashSet<>();
            Set<Integer> elsewhere = new HashSet<>();
            int start = 0;
            for (int i = 0; i < tokens.size(); i++) {
                int end = start + tokens.get(i).length();
                if (start >= textStart && end <= textEnd && end > start) {
                    inText.add(i);
                }
                if (end <= REASONING.length() || start >= argumentsStart) {
                    elsewhere.add(i);
                }
                start = end;
            }
            assertThat(carried).as("%s", tokens).containsAll(inText).doesNotContainAnyElementsOf(elsewhere);
        }
    }

    /** The whole Responses answer of {@code tokens} (token i has id i), with logprobs asked for. */
    private static ObjectNode whole(List<String> tokens) {
        ReadChatShape shape = new ReadChatShape(new ChatShape(new TokenSpelling(null, true), true, -1),
                ReasoningFormat.THINK, true, ToolCallFormat.HERMES);
        ChoiceState choice = new ChoiceState(0, 0, new int[0], null);
        for (int i = 0; i < tokens.size(); i++) {
            TokenLogprob chosen = new TokenLogprob(i, -0.5f);
            choice.accept(new EngineEvent.Token(i, tokens.get(i), tokens.get(i),
                    new EngineEvent.PositionLogprobs(chosen, List.of())));
        }
        choice.accept(new EngineEvent.Finished("", FinishReason.STOP, null, null, new EngineEvent.Usage(3, tokens.size(), 0),
                new RequestTimings(0, 0, 0, 0, 3, tokens.size()), List.of()));
        return new ResponsesAnswer("m", Json.object(), shape, choice, new TokenSpelling(null, true), null).whole();
    }
}
