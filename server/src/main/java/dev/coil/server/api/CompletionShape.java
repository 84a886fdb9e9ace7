package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.Finished;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import dev.coil.server.ServedModel;

/** /v1/completions choices: {@code {index, text, logprobs, finish_reason, stop_reason}}. */
final class CompletionShape implements ResponseShape {

    private final ServedModel model;
    private final boolean logprobs;

    /** @param logprobs whether the request asked for logprobs (then each choice carries them) */
    CompletionShape(ServedModel model, boolean logprobs) {
        this.model = model;
        this.logprobs = logprobs;
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
        if (logprobs) {
            node = LogprobsJson.completion();
            if (state.echo() && state.promptLogprobs() != null) {
                LogprobsJson.addPrompt(node, model, state, state.promptLogprobs().positions());
            }
            for (PositionLogprobs position : state.logprobs()) {
                LogprobsJson.addCompletion(node, model, state, position);
            }
        }
        String text = state.echo() ? state.echoText() + state.text() : state.text();
        return finish(choice(state.index(), text, node), state.finished());
    }

    @Override
    public ObjectNode opening(ChoiceState state) {
        if (!state.echo() || logprobs) {
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
        LogprobsJson.addPrompt(node, model, state, state.promptLogprobs().positions());
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
            LogprobsJson.addCompletion(node, model, state, position);
        }
        return choice(state.index(), text, node).putNull("finish_reason");
    }

    @Override
    public ObjectNode last(ChoiceState state, String text) {
        return finish(choice(state.index(), text, null), state.finished());
    }

    private static ObjectNode choice(int index, String text, ObjectNode logprobs) {
        ObjectNode choice = Json.object();
        choice.put("index", index);
        choice.put("text", text);
        choice.set("logprobs", logprobs);
        return choice;
    }

    private static ObjectNode finish(ObjectNode choice, Finished finished) {
        choice.put("finish_reason", finished.reason().apiName());
        choice.put("stop_reason", finished.stopString());
        return choice;
    }
}
