package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineEvent.PositionLogprobs;
import dev.coil.engine.runner.EngineEvent.PromptLogprobs;
import dev.coil.engine.runner.TokenLogprob;
import dev.coil.engine.tokenizer.StreamingDecoder;
import dev.coil.server.ServedModel;
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

    /**
     * Appends one generated (or scored prompt) token: its text, logprob, alternatives, and where its
     * text starts in the choice's text.
     */
    static void addCompletion(ObjectNode node, TokenSpelling spelling, PositionLogprobs position, int textOffset) {
        addCompletion(node, spelling, position, textOffset, position.top().size());
    }

    /** As above, with at most {@code most} of the position's alternatives. */
    private static void addCompletion(ObjectNode node, TokenSpelling spelling, PositionLogprobs position,
            int textOffset, int most) {
        String token = spelling.of(position.chosen().id());
        ((ArrayNode) node.get("tokens")).add(token);
        ((ArrayNode) node.get("token_logprobs")).add(Json.logprob(position.chosen().logprob()));
        ObjectNode top = ((ArrayNode) node.get("top_logprobs")).addObject();
        for (TokenLogprob alternative : position.top().subList(0, Math.min(most, position.top().size()))) {
            top.put(spelling.of(alternative.id()), Json.logprob(alternative.logprob()));
        }
        top.put(token, Json.logprob(position.chosen().logprob()));
        ((ArrayNode) node.get("text_offset")).add(textOffset);
    }

    /**
     * The prompt's tokens as completions logprobs (echo with logprobs: scoring), each with at most
     * {@code most} alternatives. The first token has no logprob (nothing comes before it).
     */
    static void addPrompt(ObjectNode node, TokenSpelling spelling, ChoiceState state,
            List<PositionLogprobs> positions, int most) {
        int[] offsets = promptOffsets(spelling.model(), state.promptTokens(), state.echoText());
        ((ArrayNode) node.get("tokens")).add(spelling.of(state.promptTokens()[0]));
        ((ArrayNode) node.get("token_logprobs")).addNull();
        ((ArrayNode) node.get("top_logprobs")).addNull();
        ((ArrayNode) node.get("text_offset")).add(offsets[0]);
        for (int i = 0; i < positions.size(); i++) {
            addCompletion(node, spelling, positions.get(i), offsets[i + 1], most);
        }
    }

    /**
     * vLLM's prompt_logprobs: null for the first prompt token, then for each one after it an object
     * keyed by token id, {@code {"<id>": {"logprob", "rank", "decoded_token"}}}: the prompt token
     * itself with its rank in the distribution, then up to {@code most} most likely tokens ranked
     * 1, 2, ... (the prompt token once, where it is among them).
     */
    static ArrayNode promptLogprobs(ServedModel model, PromptLogprobs prompt, int most) {
        ArrayNode array = Json.MAPPER.createArrayNode();
        array.addNull();
        for (PositionLogprobs position : prompt.positions()) {
            ObjectNode entry = array.addObject();
            addRanked(entry, model, position.chosen(), position.rank());
            List<TokenLogprob> top = position.top();
            for (int k = 0; k < Math.min(most, top.size()); k++) {
                if (top.get(k).id() != position.chosen().id()) {
                    addRanked(entry, model, top.get(k), k + 1);
                }
            }
        }
        return array;
    }

    private static void addRanked(ObjectNode entry, ServedModel model, TokenLogprob token, int rank) {
        ObjectNode logprob = entry.putObject(Integer.toString(token.id()));
        logprob.put("logprob", Json.logprob(token.logprob()));
        logprob.put("rank", rank);
        logprob.put("decoded_token", model.tokenText(token.id()));
    }

    /**
     * Where each prompt token's text starts in the echoed prompt {@code text}, in code points. The
     * tokens go through a streaming decoder, as generated ones do in the engine, so that a token
     * ending inside a character adds nothing and shares its offset with the one that completes it.
     * Each piece is then found in the text from where the last one ended rather than merely added
     * up: a text prompt is echoed as the client wrote it, and may spell out special tokens, which
     * the decoder skips (skipping them, as the echo of a token-id prompt does, keeps an added BOS
     * token from shifting the rest); a piece the text does not hold adds nothing.
     */
    static int[] promptOffsets(ServedModel model, int[] tokens, String text) {
        int[] offsets = new int[tokens.length];
        if (!model.hasTokenizer()) {
            return offsets; // the echo is empty: every token starts at 0
        }
        StreamingDecoder decoder = model.streamingDecoder(true);
        int end = 0; // UTF-16 index where the last piece ended
        int counted = 0; // UTF-16 index up to which codePoint has counted
        int codePoint = 0;
        for (int i = 0; i < tokens.length; i++) {
            String piece = decoder.accept(tokens[i]);
            int start = piece.isEmpty() ? -1 : text.indexOf(piece, end);
            int offset = start < 0 ? end : start;
            codePoint += text.codePointCount(counted, offset);
            counted = offset;
            offsets[i] = codePoint;
            if (start >= 0) {
                end = start + piece.length();
            }
        }
        return offsets;
    }

    /**
     * The length of {@code text} as completions' text_offset counts it: in code points, as Python's
     * str indexes the text (OpenAI's and vLLM's offsets), not in Java's UTF-16 units, which count a
     * character beyond the Basic Multilingual Plane (an emoji) twice.
     */
    static int codePoints(String text) {
        return text.codePointCount(0, text.length());
    }

    /** A chat logprobs object {@code {"content": [...]}} for these tokens. */
    static ObjectNode chat(TokenSpelling spelling, List<PositionLogprobs> positions) {
        ObjectNode node = Json.object();
        ArrayNode content = node.putArray("content");
        for (PositionLogprobs position : positions) {
            ObjectNode entry = chatEntry(content.addObject(), spelling, position.chosen());
            ArrayNode top = entry.putArray("top_logprobs");
            for (TokenLogprob alternative : position.top()) {
                chatEntry(top.addObject(), spelling, alternative);
            }
        }
        return node;
    }

    private static ObjectNode chatEntry(ObjectNode entry, TokenSpelling spelling, TokenLogprob token) {
        String text = spelling.of(token.id());
        entry.put("token", text);
        entry.put("logprob", Json.logprob(token.logprob()));
        ArrayNode bytes = entry.putArray("bytes");
        for (byte b : spelling.bytes(token.id())) {
            bytes.add(b & 0xff);
        }
        return entry;
    }
}
