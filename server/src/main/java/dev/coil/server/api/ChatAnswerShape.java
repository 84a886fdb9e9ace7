package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;

/**
 * A chat answer shaped further than {@link ChatShape} (tool calls): the same API, object names and
 * prompt, with its own choices and chunks.
 */
abstract class ChatAnswerShape implements ResponseShape {

    protected final ChatShape chat;

    ChatAnswerShape(ChatShape chat) {
        this.chat = chat;
    }

    @Override
    public final String idPrefix() {
        return chat.idPrefix();
    }

    @Override
    public final String responseObject() {
        return chat.responseObject();
    }

    @Override
    public final String chunkObject() {
        return chat.chunkObject();
    }

    @Override
    public final String operation() {
        return chat.operation();
    }

    @Override
    public final String promptParam() {
        return chat.promptParam();
    }

    @Override
    public final ObjectNode prompt(ChoiceState state) {
        return chat.prompt(state);
    }

    @Override
    public final void addToResponse(ObjectNode response, List<ChoiceState> choices) {
        chat.addToResponse(response, choices);
    }
}
