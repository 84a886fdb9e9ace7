package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import dev.coil.engine.runner.TokenLogprob;
import dev.coil.server.ServedModel;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Logprobs in the two shapes OpenAI uses: the completions API's parallel arrays
 * ({@code tokens, token_logprobs, top_logprobs, text_offset}) and the chat API's list of entries
 * ({@code content: [{token, logprob, bytes, top_logprobs}]}).
 */
final class LogprobsJson {

    private LogprobsJson() {
    }

    /** An empty completions logprobs object. */
    static ObjectNode completion() {
        ObjectNode node = Json.object();
        node.putArray("tokens");
        node.putArray("token_logprobs");
        node.putArray("top_logprobs");
        node.putArray("text_offset");
        return node;
    }

    /** Appends one generated (or scored prompt) token: its text, logprob, alternatives and offset. */
    static void addCompletion(ObjectNode node, ServedModel model, ChoiceState state, PositionLogprobs position) {
        String token = model.tokenText(position.chosen().id());
        ((ArrayNode) node.get("tokens")).add(token);
        ((ArrayNode) node.get("token_logprobs")).add(Json.logprob(position.chosen().logprob()));
        ObjectNode top = ((ArrayNode) node.get("top_logprobs")).addObject();
        for (TokenLogprob alternative : position.top()) {
            top.put(model.tokenText(alternative.id()), Json.logprob(alternative.logprob()));
        }
        top.put(token, Json.logprob(position.chosen().logprob()));
        ((ArrayNode) node.get("text_offset")).add(state.advanceOffset(token));
    }

    /** Appends the prompt's first token, which has no logprob (nothing comes before it). */
    static void addFirstPromptToken(ObjectNode node, ServedModel model, ChoiceState state, int tokenId) {
        String token = model.tokenText(tokenId);
        ((ArrayNode) node.get("tokens")).add(token);
        ((ArrayNode) node.get("token_logprobs")).addNull();
        ((ArrayNode) node.get("top_logprobs")).addNull();
        ((ArrayNode) node.get("text_offset")).add(state.advanceOffset(token));
    }

    /** The prompt's tokens as completions logprobs (echo with logprobs: scoring). */
    static void addPrompt(ObjectNode node, ServedModel model, ChoiceState state, List<PositionLogprobs> positions) {
        addFirstPromptToken(node, model, state, state.promptTokens()[0]);
        for (PositionLogprobs position : positions) {
            addCompletion(node, model, state, position);
        }
    }

    /** A chat logprobs object {@code {"content": [...]}} for these tokens. */
    static ObjectNode chat(ServedModel model, List<PositionLogprobs> positions) {
        ObjectNode node = Json.object();
        ArrayNode content = node.putArray("content");
        for (PositionLogprobs position : positions) {
            ObjectNode entry = chatEntry(content.addObject(), model, position.chosen());
            ArrayNode top = entry.putArray("top_logprobs");
            for (TokenLogprob alternative : position.top()) {
                chatEntry(top.addObject(), model, alternative);
            }
        }
        return node;
    }

    private static ObjectNode chatEntry(ObjectNode entry, ServedModel model, TokenLogprob token) {
        String text = model.tokenText(token.id());
        entry.put("token", text);
        entry.put("logprob", Json.logprob(token.logprob()));
        ArrayNode bytes = entry.putArray("bytes");
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            bytes.add(b & 0xff);
        }
        return entry;
    }
}
