package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;

/**
 * /v1/completions choices: {@code {index, text, logprobs, finish_reason, stop_reason}}, and vLLM's
 * {@code prompt_logprobs} when asked.
 */
final class CompletionShape implements ResponseShape {

    private final TokenSpelling spelling;
    private final int logprobs;
    private final int promptLogprobs;

    /**
     * @param spelling       how logprobs name tokens
     * @param logprobs       the request's logprobs (then each choice carries them), or -1
     * @param promptLogprobs the top tokens each whole choice's prompt_logprobs lists, or -1: none
     */
    CompletionShape(TokenSpelling spelling, int logprobs, int promptLogprobs) {
        this.spelling = spelling;
        this.logprobs = logprobs;
        this.promptLogprobs = promptLogprobs;
    }

    @Override
    public String idPrefix() {
        return "cmpl-";
    }

    @Override
    public String responseObject() {
        return "text_completion";
    }

    @Override
    public String chunkObject() {
        return "text_completion";
    }

    @Override
    public String operation() {
        return "text_completion";
    }

    @Override
    public String promptParam() {
        return "prompt";
    }

    @Override
    public ObjectNode choice(ChoiceState state) {
        ObjectNode node = null;
        if (logprobs >= 0) {
            node = LogprobsJson.completion();
            if (state.echo() && state.promptLogprobs() != null) {
                LogprobsJson.addPrompt(node, spelling, state, state.promptLogprobs().positions(), logprobs);
            }
            for (int i = 0; i < state.logprobs().size(); i++) {
                LogprobsJson.addCompletion(node, spelling, state.logprobs().get(i), state.textOffsets().get(i));
            }
        }
        String text = state.echo() ? state.echoText() + state.text() : state.text();
        ObjectNode choice = ResponseShape.finish(choice(state.index(), text, node), state.finished());
        if (promptLogprobs >= 0 && state.promptLogprobs() != null) {
            choice.set("prompt_logprobs", LogprobsJson.promptLogprobs(spelling.model(), state.promptLogprobs(),
                    promptLogprobs));
        }
        return choice;
    }

    @Override
    public ObjectNode opening(ChoiceState state) {
        if (!state.echo() || logprobs >= 0) {
            return null;
        }
        return choice(state.index(), state.echoText(), null).putNull("finish_reason");
    }

    @Override
    public ObjectNode prompt(ChoiceState state) {
        if (!state.echo()) {
            return null;
        }
        ObjectNode node = LogprobsJson.completion();
        LogprobsJson.addPrompt(node, spelling, state, state.promptLogprobs().positions(), logprobs);
        return choice(state.index(), state.echoText(), node).putNull("finish_reason");
    }

    @Override
    public ObjectNode delta(ChoiceState state, String text, PositionLogprobs position) {
        if (text.isEmpty() && position == null) {
            return null;
        }
        ObjectNode node = null;
        if (position != null) {
            node = LogprobsJson.completion();
            // The token ChoiceState accepted last: its offset is the last one recorded.
            LogprobsJson.addCompletion(node, spelling, position, state.textOffsets().getLast());
        }
        return choice(state.index(), text, node).putNull("finish_reason");
    }

    @Override
    public ObjectNode last(ChoiceState state, String text) {
        return ResponseShape.finish(choice(state.index(), text, null), state.finished());
    }

    private static ObjectNode choice(int index, String text, ObjectNode logprobs) {
        ObjectNode choice = Json.object();
        choice.put("index", index);
        choice.put("text", text);
        choice.set("logprobs", logprobs);
        return choice;
    }
}
