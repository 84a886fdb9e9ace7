package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import io.javalin.http.Context;
import io.javalin.http.Handler;

/** GET /v1/models: the one model served, with its context window (vLLM's max_model_len). */
public final class ModelsHandler implements Handler {

    private final ServerState state;

    public ModelsHandler(ServerState state) {
        this.state = state;
    }

    @Override
    public void handle(Context ctx) {
        ServedModel model = state.ready();
        ObjectNode root = Json.object();
        root.put("object", "list");
        ObjectNode entry = root.putArray("data").addObject();
        entry.put("id", model.name());
        entry.put("object", "model");
        entry.put("created", model.created());
        entry.put("owned_by", "coil");
        entry.put("root", model.engine().model().directory().toString());
        entry.put("max_model_len", model.contextLength());
        Json.respond(ctx, 200, root);
    }
}
