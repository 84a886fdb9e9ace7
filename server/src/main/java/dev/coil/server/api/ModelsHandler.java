package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import io.javalin.http.Context;

/**
 * GET /v1/models, the one model served with its context window (vLLM's max_model_len), and GET
 * /v1/models/{model}, that same entry by its id (OpenAI's retrieve).
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
        root.putArray("data").add(entry(model));
        Json.respond(ctx, 200, root);
    }

    /** GET /v1/models/{model}: the model's entry, or a 404 for any id but the one served. */
    public void retrieve(Context ctx) {
        ServedModel model = state.ready();
        String id = ctx.pathParam("model");
        if (!id.equals(model.name())) {
            throw ApiException.modelNotFound("the model '" + id + "' does not exist; this server serves '"
                    + model.name() + "'");
        }
        Json.respond(ctx, 200, entry(model));
    }

    private static ObjectNode entry(ServedModel model) {
        ObjectNode entry = Json.object();
        entry.put("id", model.name());
        entry.put("object", "model");
        entry.put("created", model.created());
        entry.put("owned_by", "coil");
        entry.put("root", model.engine().model().directory().toString());
        entry.put("max_model_len", model.contextLength());
        return entry;
    }
}
