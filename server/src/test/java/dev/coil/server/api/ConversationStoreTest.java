package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Conversations keep their items in order and within the store's size, the one used longest ago
 * going first; a request that would make one larger than the store is refused, a response's items
 * are not; metadata is checked as OpenAI checks it.
 */
class ConversationStoreTest {

    @Test
    void itemsKeepTheirOrderAndReadBackAsCopies() {
        ConversationStore store = new ConversationStore(1 << 20);
        ObjectNode conversation = store.create(Json.object().put("topic", "tools"), items("msg_1", "msg_2"));
        String id = conversation.get("id").asText();
        assertThat(id).startsWith("conv_");
        assertThat(conversation.get("object").asText()).isEqualTo("conversation");
        assertThat(conversation.at("/metadata/topic").asText()).isEqualTo("tools");
        assertThat(store.find(id)).isEqualTo(conversation);

        assertThat(store.add(id, items("msg_3"))).isTrue();
        assertThat(store.append(id, items("msg_4", "msg_5"))).isTrue();
        assertThat(ids(store.items(id))).containsExactly("msg_1", "msg_2", "msg_3", "msg_4", "msg_5");
        store.items(id).forEach(item -> ((ObjectNode) item).put("id", "changed"));
        assertThat(ids(store.items(id))).containsExactly("msg_1", "msg_2", "msg_3", "msg_4", "msg_5");

        assertThat(store.item(id, "msg_3").get("role").asText()).isEqualTo("user");
        assertThat(store.item(id, "msg_9")).isNull();
        assertThat(store.removeItem(id, "msg_3")).isTrue();
        assertThat(store.removeItem(id, "msg_3")).isFalse();
        assertThat(ids(store.items(id))).containsExactly("msg_1", "msg_2", "msg_4", "msg_5");

        assertThat(store.update(id, Json.object().put("topic", "other")).at("/metadata/topic").asText())
                .isEqualTo("other");
        assertThat(store.delete(id)).isTrue();
        assertThat(store.find(id)).isNull();
        assertThat(store.items(id)).isNull();
        assertThat(store.add(id, items("msg_6"))).isFalse();
        assertThat(store.bytes()).isZero();
    }

    @Test
    void theLeastRecentlyUsedGoFirstAndTheStoreKeepsItsSize() {
        long item = bytesOf(items("msg_1").get(0));
        long empty = "conv_".length() + 32 + "{}".length();
        ConversationStore store = new ConversationStore(3 * (empty + item) + item / 2);
        String a = store.create(Json.object(), items("msg_1")).get("id").asText();
        String b = store.create(Json.object(), items("msg_1")).get("id").asText();
        String c = store.create(Json.object(), items("msg_1")).get("id").asText();
        assertThat(store.bytes()).isEqualTo(3 * (empty + item));
        assertThat(store.find(a)).isNotNull(); // a is now the most recently used

        store.append(c, items("msg_2")); // c grows past the size: b, used longest ago, goes
        assertThat(store.find(b)).isNull();
        assertThat(store.find(a)).isNotNull();
        assertThat(ids(store.items(c))).containsExactly("msg_1", "msg_2");
        assertThat(store.bytes()).isEqualTo(2 * (empty + item) + item);

        // A request that would make one conversation larger than the store is refused and changes nothing.
        assertThatThrownBy(() -> store.add(a, items("msg_2", "msg_3", "msg_4", "msg_5")))
                .isInstanceOf(ApiException.class).hasMessageContaining("--response-store");
        assertThat(ids(store.items(a))).containsExactly("msg_1");
        assertThatThrownBy(() -> store.create(Json.object(), items("msg_1", "msg_2", "msg_3", "msg_4", "msg_5")))
                .isInstanceOf(ApiException.class);
        ObjectNode large = Json.object().put("notes", "n".repeat(512));
        assertThatThrownBy(() -> store.update(a, large)).isInstanceOf(ApiException.class)
                .satisfies(e -> assertThat(((ApiException) e).param()).isEqualTo("metadata"));
        assertThat(store.find(a).get("metadata")).isEqualTo(Json.object());
        // A response's items are appended whatever their size; a conversation too large for the store leaves it.
        assertThat(store.append(a, items("msg_2", "msg_3", "msg_4", "msg_5"))).isTrue();
        assertThat(store.find(a)).isNull();
        assertThat(store.bytes()).isEqualTo((empty + item) + item);
        assertThat(new ConversationStore(0).enabled()).isFalse();
    }

    @Test
    void metadataIsCheckedAsOpenAiChecksIt() {
        assertThat(ConversationStore.metadata(null)).isEqualTo(Json.object());
        ObjectNode sixteen = Json.object();
        for (int i = 0; i < 16; i++) {
            sixteen.put("key" + i, "v".repeat(512));
        }
        assertThat(ConversationStore.metadata(sixteen)).isSameAs(sixteen);
        assertThatThrownBy(() -> ConversationStore.metadata(sixteen.deepCopy().put("key16", "v")))
                .hasMessageContaining("at most 16 pairs");
        assertThatThrownBy(() -> ConversationStore.metadata(Json.object().put("k".repeat(65), "v")))
                .hasMessageContaining("at most 64 characters");
        assertThatThrownBy(() -> ConversationStore.metadata(Json.object().put("k", "v".repeat(513))))
                .hasMessageContaining("metadata.k must be a string of at most 512 characters");
        assertThatThrownBy(() -> ConversationStore.metadata(Json.object().put("k", 1)))
                .hasMessageContaining("metadata.k must be a string");
        assertThatThrownBy(() -> ConversationStore.metadata(Json.object().arrayNode()))
                .hasMessageContaining("metadata must be an object");
    }

    /** User messages with these ids, as ResponseInput reads them. */
    private static ArrayNode items(String... ids) {
        ArrayNode given = Json.object().arrayNode();
        for (String id : ids) {
            given.addObject().put("id", id).put("role", "user").put("content", "Hello.");
        }
        return ResponseInput.items(given, "items");
    }

    private static List<String> ids(List<JsonNode> items) {
        return items.stream().map(item -> item.get("id").asText()).toList();
    }

    private static long bytesOf(JsonNode item) {
        return item.toString().getBytes(StandardCharsets.UTF_8).length;
    }
}
