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
    private EngineEvent.PromptLogprobs promptLogprobs;
    private EngineEvent.Finished finished;
    private EngineEvent.Failed failed;
    /** Characters of token text before the next logprob entry (completions' text_offset). */
    private int textOffset;

    /**
     * @param echoText the prompt's text to put before the output (completions' echo), or null
     */
    ChoiceState(int index, int promptIndex, int[] promptTokens, String echoText) {
        this.index = index;
        this.promptIndex = promptIndex;
        this.promptTokens = promptTokens;
        this.echoText = echoText;
    }

    /** Adds an event's text and logprobs; returns the text the event adds to the output. */
    String accept(EngineEvent event) {
        switch (event) {
            case EngineEvent.PromptLogprobs prompt -> promptLogprobs = prompt;
            case EngineEvent.Token token -> {
                text.append(token.text());
                if (token.logprobs() != null) {
                    logprobs.add(token.logprobs());
                }
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

    EngineEvent.PromptLogprobs promptLogprobs() {
        return promptLogprobs;
    }

    EngineEvent.Finished finished() {
        return finished;
    }

    EngineEvent.Failed failed() {
        return failed;
    }

    /** Advances completions' text_offset past one token's text and returns where that token started. */
    int advanceOffset(String tokenText) {
        int start = textOffset;
        textOffset += tokenText.length();
        return start;
    }
}
