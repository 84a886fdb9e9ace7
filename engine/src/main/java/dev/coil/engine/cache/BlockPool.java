package dev.coil.engine.cache;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import java.util.Arrays;

/**
 * Bookkeeping of the KV blocks: reference counts, the free queue and the prefix index. No tensors:
 * block ids index the {@code PagedKeyValues} of every attention layer at once.
 *
 * <p>A block is in use while some request references it. When the last reference goes, a block
 * whose content is known (hashed: full, in the prefix index) joins the tail of the free queue and
 * stays findable; a block with no known content joins the head, to be reused first. Allocation
 * takes the head, evicting that block's index entry: so the least recently freed cached block is
 * evicted first, and only under pressure.
 */
public final class BlockPool {

    private static final int NONE = -1;

    private final int total;
    private final int blockSize;
    private final int[] references;
    private final int[] previous; // free queue, doubly linked; NONE at the ends and for blocks not in it
    private final int[] next;
    private final boolean[] queued;
    private final long[] hashes;
    private final boolean[] hashed;
    private final long[] parentHashes;
    private final int[][] contents;
    private final Cache<Long, Integer> index = Caffeine.newBuilder().build();
    private int head = NONE;
    private int tail = NONE;
    private int free;
    private long evictions;

    public BlockPool(int total, int blockSize) {
        if (total < 0 || blockSize <= 0) {
            throw new IllegalArgumentException("bad block pool: " + total + " blocks of " + blockSize + " tokens");
        }
        this.total = total;
        this.blockSize = blockSize;
        this.references = new int[total];
        this.previous = new int[total];
        this.next = new int[total];
        this.queued = new boolean[total];
        this.hashes = new long[total];
        this.hashed = new boolean[total];
        this.parentHashes = new long[total];
        this.contents = new int[total][];
        Arrays.fill(previous, NONE);
        Arrays.fill(next, NONE);
        for (int block = 0; block < total; block++) {
            append(block);
        }
    }

    public int total() {
        return total;
    }

    public int blockSize() {
        return blockSize;
    }

    /** Blocks no request references (cached ones included: they are evicted on demand). */
    public int free() {
        return free;
    }

    public int inUse() {
        return total - free;
    }

    /** Cached blocks evicted to make room since start. */
    public long evictions() {
        return evictions;
    }

    public int references(int block) {
        return references[block];
    }

    /** A block with one reference, or -1 when every block is in use. */
    public int allocate() {
        if (head == NONE) {
            return -1;
        }
        int block = head;
        unlink(block);
        if (hashed[block]) {
            index.asMap().remove(hashes[block], block);
            hashed[block] = false;
            contents[block] = null;
            evictions++;
        }
        references[block] = 1;
        return block;
    }

    /** One more reference to {@code block}; a free cached block leaves the free queue. */
    public void retain(int block) {
        if (references[block] == 0) {
            unlink(block);
        }
        references[block]++;
    }

    /** Drops one reference; at zero the block becomes free (and stays cached when hashed). */
    public void release(int block) {
        if (references[block] <= 0) {
            throw new IllegalStateException("block " + block + " released more often than referenced");
        }
        if (--references[block] == 0) {
            if (hashed[block]) {
                append(block);
            } else {
                prepend(block);
            }
        }
    }

    /**
     * Records that {@code block} holds the full block {@code tokens} following the prefix whose hash
     * is {@code parentHash}. When the same content is already indexed under another block, the index
     * keeps that one.
     */
    public void register(int block, long hash, long parentHash, int[] tokens) {
        if (hashed[block] || tokens.length != blockSize) {
            return;
        }
        Integer existing = index.asMap().putIfAbsent(hash, block);
        if (existing == null) {
            hashed[block] = true;
            hashes[block] = hash;
            parentHashes[block] = parentHash;
            contents[block] = tokens.clone();
        }
    }

    /** The cached block with this content after this prefix, or -1. Does not retain it. */
    public int lookup(long hash, long parentHash, int[] tokens) {
        Integer block = index.getIfPresent(hash);
        if (block == null || !hashed[block] || parentHashes[block] != parentHash
                || !Arrays.equals(contents[block], tokens)) {
            return -1;
        }
        return block;
    }

    public int cachedBlocks() {
        return (int) index.estimatedSize();
    }

    private void append(int block) {
        previous[block] = tail;
        next[block] = NONE;
        if (tail != NONE) {
            next[tail] = block;
        } else {
            head = block;
        }
        tail = block;
        queued[block] = true;
        free++;
    }

    private void prepend(int block) {
        next[block] = head;
        previous[block] = NONE;
        if (head != NONE) {
            previous[head] = block;
        } else {
            tail = block;
        }
        head = block;
        queued[block] = true;
        free++;
    }

    private void unlink(int block) {
        if (!queued[block]) {
            throw new IllegalStateException("block " + block + " is not free");
        }
        if (previous[block] != NONE) {
            next[previous[block]] = next[block];
        } else {
            head = next[block];
        }
        if (next[block] != NONE) {
            previous[next[block]] = previous[block];
        } else {
            tail = previous[block];
        }
        previous[block] = NONE;
        next[block] = NONE;
        queued[block] = false;
        free--;
    }
}
