package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * OpenAI's conversations, in memory (a restart forgets them): each conversation's metadata and its
 * items in order (messages, function calls and their outputs, reasoning, as the Responses API reads
 * and writes them), held as UTF-8 JSON text within {@code maxBytes} (--response-store: a budget of its
 * own beside the stored responses'); the conversation read or changed longest ago goes first.
 *
 * <p>A request that would make one conversation larger than the whole store is refused; a response's
 * items are always appended (its text was already answered), and a conversation they make too large
 * for the store leaves it.
 *
 * <p>One response at a time continues a conversation ({@link #lock}): a second, while the first runs,
 * would read the items without the first's turn and add its own after it; it is refused instead, as
 * OpenAI refuses it ({@code conversation_locked}), and may be sent again once the first has ended.
 */
public final class ConversationStore {

    /** At most this many items are created or added by one request, as OpenAI's. */
    static final int MAX_ITEMS_ADDED = 20;
    private static final int MAX_METADATA_PAIRS = 16;
    private static final int MAX_METADATA_KEY = 64;
    private static final int MAX_METADATA_VALUE = 512;

    /** One conversation: its metadata and items as JSON text, and their size. */
    private static final class Kept {
        final String id;
        final long createdAt;
        byte[] metadata;
        final List<byte[]> items = new ArrayList<>();
        long bytes;

        Kept(String id, long createdAt, byte[] metadata) {
            this.id = id;
            this.createdAt = createdAt;
            this.metadata = metadata;
            this.bytes = id.length() + metadata.length;
        }

        ObjectNode object() {
            ObjectNode conversation = Json.object().put("id", id).put("object", "conversation")
                    .put("created_at", createdAt);
            conversation.set("metadata", Json.read(metadata));
            return conversation;
        }
    }

    private final long maxBytes;
    /** In access order: the first is the one read or changed longest ago. */
    private final LinkedHashMap<String, Kept> kept = new LinkedHashMap<>(16, 0.75f, true);
    private long bytes;
    /** The conversations a response is continuing now, by id. */
    private final Set<String> locked = new HashSet<>();

    /** @param maxBytes the JSON text the store holds at most; 0 keeps no conversations */
    public ConversationStore(long maxBytes) {
        if (maxBytes < 0) {
            throw new IllegalArgumentException("--response-store must be >= 0, got " + maxBytes);
        }
        this.maxBytes = maxBytes;
    }

    /** Whether conversations are kept at all. */
    boolean enabled() {
        return maxBytes > 0;
    }

    /**
     * A new conversation holding {@code items} (read by {@link ResponseInput}), with {@code metadata}
     * (checked by {@link #metadata}); its object, {@code {"id", "object": "conversation", "created_at",
     * "metadata"}}.
     */
    synchronized ObjectNode create(ObjectNode metadata, ArrayNode items) {
        Kept conversation = new Kept(ResponseInput.newId("conv_"), Instant.now().getEpochSecond(), Json.utf8(metadata));
        List<byte[]> texts = texts(items);
        refuseBeyondStore(conversation.bytes + size(texts), "items");
        kept.put(conversation.id, conversation);
        bytes += conversation.bytes;
        addAll(conversation, texts);
        return conversation.object();
    }

    /** The conversation's object, or null when it is not kept. */
    synchronized ObjectNode find(String id) {
        Kept conversation = kept.get(id);
        return conversation == null ? null : conversation.object();
    }

    /** Replaces the conversation's metadata; its object, or null when it is not kept. */
    synchronized ObjectNode update(String id, ObjectNode metadata) {
        Kept conversation = kept.get(id);
        if (conversation == null) {
            return null;
        }
        byte[] text = Json.utf8(metadata);
        long grown = text.length - conversation.metadata.length;
        refuseBeyondStore(conversation.bytes + grown, "metadata");
        conversation.metadata = text;
        conversation.bytes += grown;
        bytes += grown;
        evictOthers(conversation);
        return conversation.object();
    }

    /** Forgets the conversation; false when it was not kept. */
    synchronized boolean delete(String id) {
        Kept conversation = kept.remove(id);
        if (conversation != null) {
            bytes -= conversation.bytes;
        }
        return conversation != null;
    }

    /** The conversation's items, oldest first (copies), or null when it is not kept. */
    synchronized List<JsonNode> items(String id) {
        Kept conversation = kept.get(id);
        if (conversation == null) {
            return null;
        }
        List<JsonNode> items = new ArrayList<>(conversation.items.size());
        conversation.items.forEach(text -> items.add(Json.read(text)));
        return items;
    }

    /** Adds {@code items} at the conversation's end; false when it is not kept. Refused beyond the store. */
    synchronized boolean add(String id, ArrayNode items) {
        Kept conversation = kept.get(id);
        if (conversation == null) {
            return false;
        }
        List<byte[]> texts = texts(items);
        refuseBeyondStore(conversation.bytes + size(texts), "items");
        addAll(conversation, texts);
        return true;
    }

    /**
     * Adds a response's items (its input, then its output) at the conversation's end: never refused;
     * a conversation they make larger than the store leaves it. False when it is not kept.
     */
    synchronized boolean append(String id, ArrayNode items) {
        Kept conversation = kept.get(id);
        if (conversation == null) {
            return false;
        }
        List<byte[]> texts = texts(items);
        if (conversation.bytes + size(texts) > maxBytes) {
            delete(id); // the others stay: they are not what grew
        } else {
            addAll(conversation, texts);
        }
        return true;
    }

    /** The item {@code itemId} of the conversation (the first with that id), or null when either is not kept. */
    synchronized JsonNode item(String id, String itemId) {
        Kept conversation = kept.get(id);
        int index = conversation == null ? -1 : indexOf(conversation, itemId);
        return index < 0 ? null : Json.read(conversation.items.get(index));
    }

    /** Removes the item {@code itemId} (the first with that id); false when either is not kept. */
    synchronized boolean removeItem(String id, String itemId) {
        Kept conversation = kept.get(id);
        int index = conversation == null ? -1 : indexOf(conversation, itemId);
        if (index < 0) {
            return false;
        }
        byte[] text = conversation.items.remove(index);
        conversation.bytes -= text.length;
        bytes -= text.length;
        return true;
    }

    /** Where the first item with id {@code itemId} is among the conversation's, or -1. */
    private static int indexOf(Kept conversation, String itemId) {
        for (int i = 0; i < conversation.items.size(); i++) {
            if (itemId.equals(Json.read(conversation.items.get(i)).path("id").asText(null))) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Marks conversation {@code id} (kept or not) as continued by a response until the returned
     * action runs (the first run counts; later ones do nothing); a 400 {@code conversation_locked}
     * while another response holds it.
     */
    synchronized Runnable lock(String id) {
        if (!locked.add(id)) {
            throw new ApiException(400, "invalid_request_error", "conversation", "conversation_locked",
                    "conversation " + id + " is being continued by another response that is still running; "
                            + "send this one again once that one has ended");
        }
        AtomicBoolean released = new AtomicBoolean();
        return () -> {
            if (released.compareAndSet(false, true)) {
                synchronized (this) {
                    locked.remove(id);
                }
            }
        };
    }

    /** The JSON text held now, in bytes. */
    synchronized long bytes() {
        return bytes;
    }

    /**
     * A request's {@code metadata}, checked as OpenAI checks it (at most 16 pairs, keys of at most 64
     * characters, string values of at most 512); an empty object for none.
     */
    static ObjectNode metadata(JsonNode given) {
        if (given == null || given.isNull()) {
            return Json.object();
        }
        if (!given.isObject()) {
            throw ApiException.invalid("metadata", "metadata must be an object of strings, got "
                    + Fields.typeName(given));
        }
        if (given.size() > MAX_METADATA_PAIRS) {
            throw ApiException.invalid("metadata", "metadata holds at most " + MAX_METADATA_PAIRS + " pairs, got "
                    + given.size());
        }
        for (Map.Entry<String, JsonNode> pair : given.properties()) {
            if (pair.getKey().length() > MAX_METADATA_KEY) {
                throw ApiException.invalid("metadata", "metadata keys are at most " + MAX_METADATA_KEY
                        + " characters long; \"" + pair.getKey() + "\" has " + pair.getKey().length());
            }
            JsonNode value = pair.getValue();
            if (!value.isTextual() || value.textValue().length() > MAX_METADATA_VALUE) {
                throw ApiException.invalid("metadata", "metadata." + pair.getKey() + " must be a string of at most "
                        + MAX_METADATA_VALUE + " characters");
            }
        }
        return (ObjectNode) given;
    }

    /** A 400 naming {@code param} when the conversation would hold more than the whole store. */
    private void refuseBeyondStore(long conversationBytes, String param) {
        if (conversationBytes > maxBytes) {
            throw ApiException.invalid(param, "the conversation would hold " + conversationBytes + " bytes of JSON, "
                    + "more than this server keeps (" + maxBytes + ", --response-store)");
        }
    }

    private void addAll(Kept conversation, List<byte[]> texts) {
        long added = size(texts);
        conversation.items.addAll(texts);
        conversation.bytes += added;
        bytes += added;
        evictOthers(conversation);
    }

    /** Forgets the conversations used longest ago, other than {@code current}, until the store is within its size. */
    private void evictOthers(Kept current) {
        Iterator<Kept> oldest = kept.values().iterator();
        while (bytes > maxBytes && oldest.hasNext()) {
            Kept conversation = oldest.next();
            if (!Objects.equals(conversation.id, current.id)) {
                bytes -= conversation.bytes;
                oldest.remove();
            }
        }
    }

    private static List<byte[]> texts(ArrayNode items) {
        List<byte[]> texts = new ArrayList<>(items.size());
        items.forEach(item -> texts.add(Json.utf8(item)));
        return texts;
    }

    private static long size(List<byte[]> texts) {
        long size = 0;
        for (byte[] text : texts) {
            size += text.length;
        }
        return size;
    }
}
