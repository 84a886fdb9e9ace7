package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;

/**
 * The store keeps within its size, the response read or stored longest ago going first; one larger
 * than the whole store is not kept; a conversation reads back as its items followed by the output.
 */
class ResponseStoreTest {

    @Test
    void theLeastRecentlyUsedGoFirstAndTheStoreKeepsItsSize() {
        long one = bytesOf("a");
        ResponseStore store = new ResponseStore(3 * one + one / 2);
        for (String id : new String[] {"a", "b", "c"}) {
            store.save(response(id), items(), 0, 1);
        }
        assertThat(store.bytes()).isEqualTo(3 * one);
        assertThat(store.find("a")).isNotNull(); // a is now the most recently used
        store.save(response("d"), items(), 0, 1);
        assertThat(store.find("b")).isNull();
        assertThat(store.find("a")).isNotNull();
        assertThat(store.find("c")).isNotNull();
        assertThat(store.find("d")).isNotNull();
        assertThat(store.bytes()).isEqualTo(3 * one);

        store.save(response("d"), items(), 0, 1); // stored again: replaced, not counted twice
        assertThat(store.bytes()).isEqualTo(3 * one);
        assertThat(store.remove("c")).isTrue();
        assertThat(store.remove("c")).isFalse();
        assertThat(store.bytes()).isEqualTo(2 * one);

        ResponseStore small = new ResponseStore(one - 1);
        small.save(response("a"), items(), 0, 1);
        assertThat(small.find("a")).isNull();
        assertThat(small.bytes()).isZero();
        assertThat(new ResponseStore(0).enabled()).isFalse();
    }

    @Test
    void aConversationReadsBackWithItsOutputAfterIt() {
        ResponseStore store = new ResponseStore(1 << 20);
        ArrayNode conversation = items();
        conversation.addObject().put("type", "message").put("id", "msg_2");
        store.save(response("r"), conversation, 1, 2);
        ResponseStore.Found found = store.find("r");
        assertThat(found.response()).isEqualTo(response("r"));
        assertThat(found.conversation()).hasSize(3);
        assertThat(found.conversation().get(2)).isEqualTo(response("r").at("/output/0"));
        assertThat(found.input()).hasSize(1);
        assertThat(found.input().get(0).get("id").asText()).isEqualTo("msg_2");
        // What was read back is a copy: changing it changes nothing stored.
        found.conversation().removeAll();
        assertThat(store.find("r").conversation()).hasSize(3);
    }

    private static ObjectNode response(String id) {
        ObjectNode response = Json.object().put("id", id);
        response.putArray("output").addObject().put("type", "message").put("id", "msg_out_" + id);
        return response;
    }

    private static ArrayNode items() {
        ArrayNode items = Json.object().arrayNode();
        items.addObject().put("type", "message").put("id", "msg_1");
        return items;
    }

    /** What one response of {@link #response} with {@link #items} takes in a store. */
    private static long bytesOf(String id) {
        ResponseStore store = new ResponseStore(1 << 20);
        store.save(response(id), items(), 0, 1);
        return store.bytes();
    }
}
