package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The Responses API's stored responses, in memory (a restart forgets them): each response as it was
 * answered, and the conversation a response that names it as {@code previous_response_id} continues
 * (the previous responses' items, its own input items, its output items). Held as UTF-8 JSON text
 * within {@code maxBytes} (--response-store); the response read or stored longest ago goes first.
 * Every conversation holds the whole chain before it, so that a chain never loses its start.
 */
public final class ResponseStore {

    /** A stored response: its JSON, its conversation's items, and where its own input items are among them. */
    private record Stored(byte[] response, byte[] conversation, int inputFrom, int inputTo) {
        long bytes() {
            return response.length + conversation.length;
        }
    }

    /**
     * A stored response found: each part read from its JSON text when asked, a copy each time (a
     * request that continues the response reads only its conversation).
     */
    static final class Found {
        private final Stored stored;

        private Found(Stored stored) {
            this.stored = stored;
        }

        /** The response as it was answered. */
        ObjectNode response() {
            return (ObjectNode) Json.read(stored.response());
        }

        /** Its conversation: the items before it, its own input items, its output items. */
        ArrayNode conversation() {
            return (ArrayNode) Json.read(stored.conversation());
        }

        /** The response's own input items. */
        ArrayNode input() {
            ArrayNode conversation = conversation();
            ArrayNode input = Json.object().arrayNode();
            for (int i = stored.inputFrom(); i < stored.inputTo(); i++) {
                input.add(conversation.get(i));
            }
            return input;
        }
    }

    private final long maxBytes;
    /** In access order: the first is the one read or stored longest ago. */
    private final LinkedHashMap<String, Stored> stored = new LinkedHashMap<>(16, 0.75f, true);
    private long bytes;

    /** @param maxBytes the JSON text the store holds at most; 0 stores nothing */
    public ResponseStore(long maxBytes) {
        if (maxBytes < 0) {
            throw new IllegalArgumentException("--response-store must be >= 0, got " + maxBytes);
        }
        this.maxBytes = maxBytes;
    }

    /** Whether responses are stored at all. */
    boolean enabled() {
        return maxBytes > 0;
    }

    /**
     * Stores {@code response} (by its id), with the conversation it answered ({@code conversation}, its
     * own input at [inputFrom, inputTo)) followed by its output items. One larger than the whole store
     * is not kept.
     */
    synchronized void save(ObjectNode response, ArrayNode conversation, int inputFrom, int inputTo) {
        ArrayNode continued = conversation.deepCopy();
        continued.addAll((ArrayNode) response.get("output"));
        Stored entry = new Stored(Json.utf8(response), Json.utf8(continued), inputFrom, inputTo);
        String id = response.get("id").textValue();
        remove(id);
        if (entry.bytes() > maxBytes) {
            return;
        }
        stored.put(id, entry);
        bytes += entry.bytes();
        Iterator<Map.Entry<String, Stored>> oldest = stored.entrySet().iterator();
        while (bytes > maxBytes) {
            bytes -= oldest.next().getValue().bytes();
            oldest.remove();
        }
    }

    /** The response stored as {@code id}, or null. */
    synchronized Found find(String id) {
        Stored entry = stored.get(id);
        return entry == null ? null : new Found(entry);
    }

    /** Forgets {@code id}; false when it was not stored. */
    synchronized boolean remove(String id) {
        Stored entry = stored.remove(id);
        if (entry != null) {
            bytes -= entry.bytes();
        }
        return entry != null;
    }

    /** The JSON text held now, in bytes. */
    synchronized long bytes() {
        return bytes;
    }
}
