package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;

/** A route that answers a JSON body already read: how {@link InvocationsHandler} passes a request on. */
interface BodyHandler {

    /** Answers {@code body} on {@code ctx}, as the route answers a request that carries it. */
    void answer(Context ctx, ObjectNode body) throws Exception;
}
