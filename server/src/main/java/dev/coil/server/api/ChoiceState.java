package dev.coil.server.api;

import dev.coil.engine.runner.EngineEvent;
import java.util.ArrayList;
import java.util.List;

/**
 * What one choice has produced so far: its text, its tokens' logprobs, the prompt's logprobs, and
 * how it ended. Filled from the choice's engine events by the one thread answering the request.
 */
final class ChoiceState {

    private final int index;
    private final int promptIndex;
    private final int[] promptTokens;
    private final String echoText;
    private final StringBuilder text = new StringBuilder();
    private final List<EngineEvent.PositionLogprobs> logprobs = new ArrayList<>();
    /** Every generated token's id, in order. */
    private final List<Integer> tokenIds = new ArrayList<>();
    /** The text each entry of {@link #logprobs}'s token added to the output (empty while held back). */
    private final List<String> logprobTexts = new ArrayList<>();
    /** Where each entry of {@link #logprobs}'s token starts in the choice's text (completions' text_offset). */
    private final List<Integer> textOffsets = new ArrayList<>();
    /** Where the generated text starts: after the echoed prompt's code points. */
    private final int generatedOffset;
    /** Code points the generated tokens have decoded to so far, before stop strings cut any. */
    private int decodedLength;
    /** Tokens generated so far. */
    private int generatedTokens;
    private EngineEvent.PromptLogprobs promptLogprobs;
    private EngineEvent.Finished finished;
    private EngineEvent.Failed failed;

    /**
     * @param echoText the prompt's text to put before the output (completions' echo), or null
     */
    ChoiceState(int index, int promptIndex, int[] promptTokens, String echoText) {
        this.index = index;
        this.promptIndex = promptIndex;
        this.promptTokens = promptTokens;
        this.echoText = echoText;
        this.generatedOffset = echoText == null ? 0 : LogprobsJson.codePoints(echoText);
    }

    /** Adds an event's text and logprobs; returns the text the event adds to the output. */
    String accept(EngineEvent event) {
        switch (event) {
            case EngineEvent.PromptLogprobs prompt -> promptLogprobs = prompt;
            case EngineEvent.Token token -> {
                generatedTokens++;
                tokenIds.add(token.id());
                text.append(token.text());
                if (token.logprobs() != null) {
                    logprobs.add(token.logprobs());
                    logprobTexts.add(token.text());
                    textOffsets.add(generatedOffset + decodedLength);
                }
                decodedLength += LogprobsJson.codePoints(token.decoded());
                return token.text();
            }
            case EngineEvent.Finished end -> {
                finished = end;
                text.append(end.text());
                return end.text();
            }
            case EngineEvent.Failed failure -> failed = failure;
        }
        return "";
    }

    int index() {
        return index;
    }

    int promptIndex() {
        return promptIndex;
    }

    int[] promptTokens() {
        return promptTokens;
    }

    /** The generated tokens' ids so far, in order. */
    List<Integer> tokenIds() {
        return tokenIds;
    }

    int generatedTokens() {
        return generatedTokens;
    }

    boolean echo() {
        return echoText != null;
    }

    String echoText() {
        return echoText;
    }

    String text() {
        return text.toString();
    }

    List<EngineEvent.PositionLogprobs> logprobs() {
        return logprobs;
    }

    /** The text each {@link #logprobs()} entry's token added to the output, in order. */
    List<String> logprobTexts() {
        return logprobTexts;
    }

    /**
     * Where the token of each {@link #logprobs()} entry starts in the choice's text (after the echoed
     * prompt, when there is one), in code points: the text the tokens before it decoded to, a token
     * that ends inside a character sharing its offset with the token that completes it.
     */
    List<Integer> textOffsets() {
        return textOffsets;
    }

    EngineEvent.PromptLogprobs promptLogprobs() {
        return promptLogprobs;
    }

    EngineEvent.Finished finished() {
        return finished;
    }

    EngineEvent.Failed failed() {
        return failed;
    }
}
