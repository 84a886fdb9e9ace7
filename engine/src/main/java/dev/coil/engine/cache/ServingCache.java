package dev.coil.engine.cache;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.RemovalCause;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.LayerState;
import dev.coil.engine.sched.CacheResources;
import dev.coil.engine.sched.ScheduledRequest;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The serving cache: KV blocks ({@link BlockPool}), Mamba state slots ({@link SlotPool}), the
 * prefix cache over both, and the {@link StateStore} that holds their contents (host or GPU).
 *
 * <p>Prefix caching for hybrids: attention layers can resume from any cached run of full blocks,
 * but a Mamba layer's state after a prefix cannot be rebuilt from blocks — it must have been saved.
 * So the state is snapshotted during prefill at multiples of {@code snapshotIntervalBlocks} blocks
 * (a prompt chunk ends at the last such position it reaches, so at most one snapshot a chunk) and
 * when a request finishes. A hit for a model with Mamba layers is the
 * longest snapshotted prefix whose full blocks are all still cached; for an attention-only model,
 * the longest run of cached blocks. Snapshots live in a Caffeine cache bounded by bytes.
 */
public final class ServingCache implements CacheResources, AutoCloseable {

    private final boolean hasMamba;
    private final int blockSize;
    private final BlockPool blockPool;
    private final SlotPool slotPool;
    private final StateStore store;
    private final boolean prefixCaching;
    private final int snapshotInterval; // in positions; 0: only at request end
    private final Cache<Long, StateSnapshot> snapshots;
    private final Map<Long, Set<Long>> snapshotsByParent = new HashMap<>();

    private long queries;
    private long queryTokens;
    private long hits;
    private long hitTokens;

    /** A cache whose memory is on the host (the CPU backend). */
    public ServingCache(CacheSizing sizing, List<BlockSpec> blocks, Supplier<LayerState[]> newStates) {
        this(sizing, blocks, new HostStateStore(sizing, blocks, newStates));
    }

    /** A cache over {@code store}, which holds sizing.blocks() K/V blocks and sizing.slots() state slots. */
    public ServingCache(CacheSizing sizing, List<BlockSpec> blocks, StateStore store) {
        this.hasMamba = blocks.stream().anyMatch(BlockSpec.Mamba.class::isInstance);
        this.blockSize = sizing.blockSize();
        this.blockPool = new BlockPool(sizing.blocks(), sizing.blockSize());
        this.slotPool = new SlotPool(sizing.slots());
        this.store = store;
        this.prefixCaching = sizing.prefixCaching();
        this.snapshotInterval = sizing.snapshotIntervalBlocks() * sizing.blockSize();
        this.snapshots = Caffeine.newBuilder()
                .maximumWeight(Math.max(1, sizing.snapshotBytes()))
                .<Long, StateSnapshot>weigher((key, snapshot) -> snapshot.bytes())
                .executor(Runnable::run)
                .removalListener((Long key, StateSnapshot snapshot, RemovalCause cause) -> forgetSnapshot(key, snapshot))
                .build();
    }

    /** Where the blocks' and slots' contents live. */
    public StateStore store() {
        return store;
    }

    public BlockPool blockPool() {
        return blockPool;
    }

    public SlotPool slotPool() {
        return slotPool;
    }

    public boolean hasMamba() {
        return hasMamba;
    }

    public long queries() {
        return queries;
    }

    public long queryTokens() {
        return queryTokens;
    }

    public long hits() {
        return hits;
    }

    public long hitTokens() {
        return hitTokens;
    }

    public long snapshotCount() {
        snapshots.cleanUp();
        return snapshots.estimatedSize();
    }

    /** Drops every cached prefix (blocks stay allocated to their requests). */
    public void clearPrefixCache() {
        snapshots.invalidateAll();
        snapshots.cleanUp();
    }

    @Override
    public int blockSize() {
        return blockSize;
    }

    @Override
    public boolean hasFreeSlot() {
        return slotPool.free() > 0;
    }

    @Override
    public void acquireSlot(ScheduledRequest request) {
        int slot = slotPool.acquire();
        if (slot < 0) {
            throw new IllegalStateException("no free state slot");
        }
        store.clearSlot(slot);
        request.setSlot(slot);
    }

    @Override
    public boolean ensureBlocks(ScheduledRequest request, int positions) {
        int needed = Math.ceilDiv(positions, blockSize) - request.blockCount();
        if (needed <= 0) {
            return true;
        }
        if (blockPool.free() < needed) {
            return false;
        }
        for (int i = 0; i < needed; i++) {
            request.addBlock(blockPool.allocate());
        }
        return true;
    }

    @Override
    public boolean couldEverHold(int positions) {
        return Math.ceilDiv(positions, blockSize) <= blockPool.total();
    }

    @Override
    public void releaseAll(ScheduledRequest request) {
        releaseBlocks(request);
        if (request.slot() >= 0) {
            slotPool.release(request.slot());
            request.setSlot(-1);
        }
    }

    @Override
    public int limitChunk(ScheduledRequest request, int start, int count) {
        if (!prefixCaching || !hasMamba || snapshotInterval == 0 || start >= request.promptLength()) {
            return count;
        }
        // The last snapshot position the chunk reaches, so that a long prompt still runs in chunks
        // of the step's whole budget: one snapshot a chunk at most, never a chunk cut to the interval.
        int end = Math.min(start + count, request.promptLength());
        int boundary = end / snapshotInterval * snapshotInterval;
        return boundary > start ? boundary - start : count;
    }

    @Override
    public int restorePrefix(ScheduledRequest request) {
        if (!prefixCaching) {
            return 0;
        }
        int limit = request.tokenCount() - 1; // the last token is always computed: its logits are needed
        queries++;
        queryTokens += request.tokenCount();
        hashFullBlocks(request, limit / blockSize);
        int matched = 0;
        while (matched < limit / blockSize && blockPool.lookup(request.blockHash(matched), parentHash(request, matched),
                request.tokens(matched * blockSize, (matched + 1) * blockSize)) >= 0) {
            matched++;
        }
        int position;
        StateSnapshot snapshot = null;
        if (!hasMamba) {
            position = matched * blockSize;
        } else {
            snapshot = findSnapshot(request, matched, limit);
            position = snapshot == null ? 0 : snapshot.position();
        }
        if (position == 0) {
            return 0;
        }
        int fullBlocks = position / blockSize;
        for (int i = 0; i < fullBlocks; i++) {
            int block = blockPool.lookup(request.blockHash(i), parentHash(request, i),
                    request.tokens(i * blockSize, (i + 1) * blockSize));
            blockPool.retain(block);
            request.addBlock(block);
        }
        if (snapshot != null) {
            if (position % blockSize != 0) {
                int tailBlock = blockPool.allocate();
                if (tailBlock < 0) {
                    releaseBlocks(request);
                    return 0;
                }
                request.addBlock(tailBlock);
            }
            store.restoreSlot(request.slot(), request.blockTable(), snapshot.copy());
        }
        hits++;
        hitTokens += position;
        return position;
    }

    @Override
    public void computed(ScheduledRequest request, int from, int to) {
        if (!prefixCaching) {
            return;
        }
        int full = to / blockSize;
        hashFullBlocks(request, full);
        for (int i = from / blockSize; i < full; i++) {
            blockPool.register(request.block(i), request.blockHash(i), parentHash(request, i),
                    request.tokens(i * blockSize, (i + 1) * blockSize));
        }
        if (hasMamba && snapshotInterval > 0 && to % snapshotInterval == 0 && to <= request.promptLength()) {
            snapshot(request, to);
        }
    }

    @Override
    public void finished(ScheduledRequest request) {
        if (prefixCaching && hasMamba && request.computed() > 0) {
            snapshot(request, request.computed());
        }
    }

    @Override
    public void close() {
        store.close();
    }

    /** Saves the slot's Mamba state (and the tail's K/V rows) as the state after tokens [0, position). */
    private void snapshot(ScheduledRequest request, int position) {
        int fullBlocks = position / blockSize;
        hashFullBlocks(request, fullBlocks);
        long parent = parentHash(request, fullBlocks);
        int[] tail = request.tokens(fullBlocks * blockSize, position);
        StateStore.SlotCopy copy = store.saveSlot(request.slot(), request.blockTable(), position);
        if (copy == null) {
            snapshots.cleanUp(); // evictions not yet made give their copies back
            copy = store.saveSlot(request.slot(), request.blockTable(), position);
            if (copy == null) {
                return; // no room for a copy: this position is not cached
            }
        }
        long key = PrefixHash.extend(parent, tail, 0, tail.length);
        snapshots.put(key, new StateSnapshot(position, parent, tail, copy));
        snapshotsByParent.computeIfAbsent(parent, p -> new HashSet<>()).add(key);
    }

    /**
     * The snapshot of the longest prefix of the request's tokens, at most {@code limit} long, whose
     * full blocks are among the first {@code matched} (all cached); null when none.
     */
    private StateSnapshot findSnapshot(ScheduledRequest request, int matched, int limit) {
        snapshots.cleanUp();
        for (int j = Math.min(matched, limit / blockSize); j >= 0; j--) {
            long parent = parentHash(request, j);
            Set<Long> keys = snapshotsByParent.get(parent);
            if (keys == null) {
                continue;
            }
            StateSnapshot best = null;
            for (Long key : List.copyOf(keys)) {
                StateSnapshot candidate = snapshots.getIfPresent(key);
                if (candidate == null || candidate.parentHash() != parent || candidate.position() > limit
                        || candidate.position() < j * blockSize || candidate.position() == 0
                        || (best != null && best.position() >= candidate.position())) {
                    continue;
                }
                int start = j * blockSize;
                if (Arrays.equals(candidate.tailTokens(), request.tokens(start, candidate.position()))) {
                    best = candidate;
                }
            }
            if (best != null) {
                return best;
            }
        }
        return null;
    }

    private void forgetSnapshot(Long key, StateSnapshot snapshot) {
        if (snapshot == null) {
            return;
        }
        snapshot.copy().release();
        if (key == null) {
            return;
        }
        Set<Long> keys = snapshotsByParent.get(snapshot.parentHash());
        if (keys != null && snapshots.getIfPresent(key) == null) {
            keys.remove(key);
            if (keys.isEmpty()) {
                snapshotsByParent.remove(snapshot.parentHash());
            }
        }
    }

    /** Makes sure the request's chain hashes cover its first {@code count} full blocks. */
    private void hashFullBlocks(ScheduledRequest request, int count) {
        while (request.hashedBlocks() < count) {
            int index = request.hashedBlocks();
            long parent = parentHash(request, index);
            int[] tokens = request.tokens(index * blockSize, (index + 1) * blockSize);
            request.addBlockHash(PrefixHash.extend(parent, tokens, 0, tokens.length));
        }
    }

    private static long parentHash(ScheduledRequest request, int blockIndex) {
        return blockIndex == 0 ? PrefixHash.root(request.cacheSalt()) : request.blockHash(blockIndex - 1);
    }

    private void releaseBlocks(ScheduledRequest request) {
        for (int i = 0; i < request.blockCount(); i++) {
            blockPool.release(request.block(i));
        }
        request.clearBlocks();
    }
}
