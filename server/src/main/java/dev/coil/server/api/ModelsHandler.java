package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import io.javalin.http.Context;

/**
 * GET /v1/models, the one model served with its context window (vLLM's max_model_len), an entry for
 * each name it answers to (--served-model-name), and GET /v1/models/{model}, that entry by its name
 * (OpenAI's retrieve).
 */
public final class ModelsHandler {

    private final ServerState state;

    public ModelsHandler(ServerState state) {
        this.state = state;
    }

    /** GET /v1/models: {@code {"object": "list", "data": [model]}}. */
    public void list(Context ctx) {
        ServedModel model = state.ready();
        ObjectNode root = Json.object();
        root.put("object", "list");
        var data = root.putArray("data");
        model.names().forEach(name -> data.add(entry(model, name)));
        Json.respond(ctx, 200, root);
    }

    /** GET /v1/models/{model}: the entry of that name, or a 404 for a name the model does not answer to. */
    public void retrieve(Context ctx) {
        ServedModel model = state.ready();
        String id = ctx.pathParam("model");
        if (!model.names().contains(id)) {
            throw ApiException.modelNotFound("the model '" + id + "' does not exist; this server serves '"
                    + String.join("', '", model.names()) + "'");
        }
        Json.respond(ctx, 200, entry(model, id));
    }

    /** The entry of the model under {@code name}, one of its names: each is listed as a model, as vLLM lists them. */
    private static ObjectNode entry(ServedModel model, String name) {
        ObjectNode entry = Json.object();
        entry.put("id", name);
        entry.put("object", "model");
        entry.put("created", model.created());
        entry.put("owned_by", "coil");
        entry.put("root", model.engine().model().directory().toString());
        entry.put("max_model_len", model.contextLength());
        return entry;
    }
}
