package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import io.javalin.http.Context;
import java.util.List;

/**
 * POST /tokenize and /detokenize with vLLM's shapes. /tokenize takes a {@code prompt} (with
 * add_special_tokens, default true) or chat {@code messages} (rendered through the chat template,
 * add_special_tokens default false) and answers {@code {count, max_model_len, tokens, token_strs}};
 * /detokenize takes {@code tokens} and answers {@code {prompt}}.
 */
public final class TokenizeHandlers {

    private final ServerState state;
    private final long maxBodyBytes;

    public TokenizeHandlers(ServerState state, long maxBodyBytes) {
        this.state = state;
        this.maxBodyBytes = maxBodyBytes;
    }

    public void tokenize(Context ctx) {
        ServedModel model = state.ready();
        Fields fields = new Fields(JsonBody.read(ctx, maxBodyBytes));
        requireTokenizer(model, fields.has("messages") ? "messages" : "prompt");
        int[] tokens;
        if (fields.has("messages")) {
            tokens = ChatPrompt.tokens(fields, model, fields.bool("add_special_tokens", false));
        } else {
            String prompt = fields.string("prompt");
            if (prompt == null) {
                throw ApiException.invalid("prompt", "give prompt (a string) or messages (a chat)");
            }
            tokens = model.encode(prompt, fields.bool("add_special_tokens", true));
        }
        ObjectNode root = Json.object();
        root.put("count", tokens.length);
        root.put("max_model_len", model.contextLength());
        root.set("tokens", Json.array(tokens));
        if (fields.bool("return_token_strs", false)) {
            ArrayNode strings = root.putArray("token_strs");
            for (int id : tokens) {
                strings.add(model.tokenText(id));
            }
        } else {
            root.putNull("token_strs");
        }
        Json.respond(ctx, 200, root);
    }

    public void detokenize(Context ctx) {
        ServedModel model = state.ready();
        Fields fields = new Fields(JsonBody.read(ctx, maxBodyBytes));
        requireTokenizer(model, "tokens");
        if (!fields.has("tokens")) {
            throw ApiException.invalid("tokens", "tokens is required: an array of token ids");
        }
        List<Integer> ids = fields.integers("tokens", 0, model.vocabSize() - 1);
        int[] tokens = ids.stream().mapToInt(Integer::intValue).toArray();
        ObjectNode root = Json.object();
        root.put("prompt", model.decode(tokens, false));
        Json.respond(ctx, 200, root);
    }

    private static void requireTokenizer(ServedModel model, String param) {
        if (!model.hasTokenizer()) {
            throw ApiException.invalid(param, "this model has no tokenizer.json");
        }
    }
}
