package dev.coil.engine.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The KV block pool on its own: reference counts, the free queue's reuse order (blocks of unknown
 * content first, then the least recently freed cached block), the prefix index (a hit needs the same
 * hash, parent and tokens) and the counts, checked against a model of the pool kept by the test.
 */
class BlockPoolTest {

    static final int BLOCK_SIZE = 4;

    /** The tokens of a full block, distinct for each {@code seed}. */
    static int[] tokens(int seed) {
        int[] ids = new int[BLOCK_SIZE];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = seed * BLOCK_SIZE + i;
        }
        return ids;
    }

    /** Registers {@code block} as the first block of a prompt whose tokens are {@code tokens(seed)}. */
    static long registerFirst(BlockPool pool, int block, int seed) {
        long hash = PrefixHash.extend(PrefixHash.ROOT, tokens(seed), 0, BLOCK_SIZE);
        pool.register(block, hash, PrefixHash.ROOT, tokens(seed));
        return hash;
    }

    static int lookupFirst(BlockPool pool, int seed) {
        return pool.lookup(PrefixHash.extend(PrefixHash.ROOT, tokens(seed), 0, BLOCK_SIZE), PrefixHash.ROOT,
                tokens(seed));
    }

    @Test
    void allocatesEveryBlockOnceThenReportsNoneLeft() {
        BlockPool pool = new BlockPool(5, BLOCK_SIZE);
        Set<Integer> allocated = new HashSet<>();
        for (int i = 0; i < 5; i++) {
            int block = pool.allocate();
            assertThat(block).isBetween(0, 4);
            assertThat(pool.references(block)).isEqualTo(1);
            allocated.add(block);
            assertThat(pool.free()).isEqualTo(4 - i);
            assertThat(pool.inUse()).isEqualTo(i + 1);
        }
        assertThat(allocated).as("no block handed out twice").hasSize(5);

        assertThat(pool.allocate()).isEqualTo(-1);
        assertThat(pool.allocate()).as("asking again changes nothing").isEqualTo(-1);
        assertThat(pool.free()).isZero();
        assertThat(pool.inUse()).isEqualTo(5);

        pool.release(3);
        assertThat(pool.allocate()).as("a released block is the one left").isEqualTo(3);
    }

    @Test
    void anEmptyPoolHasNothingToAllocate() {
        BlockPool pool = new BlockPool(0, BLOCK_SIZE);
        assertThat(pool.allocate()).isEqualTo(-1);
        assertThat(pool.free()).isZero();
        assertThat(pool.inUse()).isZero();
    }

    @Test
    void rejectsANegativeSizeOrAnEmptyBlock() {
        assertThatThrownBy(() -> new BlockPool(-1, BLOCK_SIZE)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new BlockPool(4, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void aBlockIsFreeOnlyWhenItsLastReferenceGoes() {
        BlockPool pool = new BlockPool(3, BLOCK_SIZE);
        int block = pool.allocate();
        pool.retain(block);
        pool.retain(block);
        assertThat(pool.references(block)).isEqualTo(3);
        assertThat(pool.inUse()).isEqualTo(1);

        pool.release(block);
        pool.release(block);
        assertThat(pool.references(block)).isEqualTo(1);
        assertThat(pool.free()).as("still referenced once: not free").isEqualTo(2);

        pool.release(block);
        assertThat(pool.references(block)).isZero();
        assertThat(pool.free()).isEqualTo(3);
    }

    @Test
    void releasingMoreOftenThanReferencedFailsAndChangesNothing() {
        BlockPool pool = new BlockPool(3, BLOCK_SIZE);
        assertThatThrownBy(() -> pool.release(2)).as("a block never allocated")
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("block 2");

        int block = pool.allocate();
        pool.release(block);
        assertThatThrownBy(() -> pool.release(block)).as("a double release")
                .isInstanceOf(IllegalStateException.class);
        assertThat(pool.references(block)).isZero();
        assertThat(pool.free()).isEqualTo(3);

        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            order.add(pool.allocate());
        }
        assertThat(order).as("the failed releases did not queue any block twice").doesNotHaveDuplicates();
        assertThat(pool.allocate()).isEqualTo(-1);
    }

    @Test
    void aFreedCachedBlockStaysFindableUntilItsReuse() {
        BlockPool pool = new BlockPool(2, BLOCK_SIZE);
        int cached = pool.allocate();
        registerFirst(pool, cached, 7);
        pool.release(cached);
        assertThat(pool.free()).as("a cached block with no reference counts as free").isEqualTo(2);
        assertThat(lookupFirst(pool, 7)).isEqualTo(cached);
        assertThat(pool.cachedBlocks()).isEqualTo(1);

        int other = pool.allocate();
        assertThat(other).as("the never-used block goes before the cached one").isNotEqualTo(cached);
        assertThat(lookupFirst(pool, 7)).isEqualTo(cached);
        assertThat(pool.evictions()).isZero();

        int reused = pool.allocate();
        assertThat(reused).isEqualTo(cached);
        assertThat(lookupFirst(pool, 7)).as("reuse evicts the block's index entry").isEqualTo(-1);
        assertThat(pool.cachedBlocks()).isZero();
        assertThat(pool.evictions()).isEqualTo(1);
    }

    @Test
    void blocksOfUnknownContentAreReusedFirstThenTheLeastRecentlyFreedCachedBlock() {
        BlockPool pool = new BlockPool(6, BLOCK_SIZE);
        int[] blocks = new int[6];
        for (int i = 0; i < 6; i++) {
            blocks[i] = pool.allocate();
        }
        registerFirst(pool, blocks[0], 100);
        registerFirst(pool, blocks[1], 101);
        registerFirst(pool, blocks[2], 102);
        // Freed in the order 1, 3 (uncached), 2, 0, 4 (uncached), 5 (uncached).
        pool.release(blocks[1]);
        pool.release(blocks[3]);
        pool.release(blocks[2]);
        pool.release(blocks[0]);
        pool.release(blocks[4]);
        pool.release(blocks[5]);

        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            order.add(pool.allocate());
        }
        assertThat(order).as("uncached blocks newest first, then cached ones in the order they were freed")
                .containsExactly(blocks[5], blocks[4], blocks[3], blocks[1], blocks[2], blocks[0]);
        assertThat(pool.evictions()).isEqualTo(3);
    }

    @Test
    void aCachedBlockUsedAgainIsEvictedAfterTheBlocksFreedBeforeItsSecondRelease() {
        BlockPool pool = new BlockPool(3, BLOCK_SIZE);
        int first = pool.allocate();
        int second = pool.allocate();
        int third = pool.allocate();
        registerFirst(pool, first, 1);
        registerFirst(pool, second, 2);
        registerFirst(pool, third, 3);
        pool.release(first);
        pool.release(second);
        pool.release(third);

        // A prefix hit on the oldest one takes it out of the free queue...
        int hit = lookupFirst(pool, 1);
        assertThat(hit).isEqualTo(first);
        pool.retain(hit);
        assertThat(pool.free()).isEqualTo(2);
        assertThat(pool.references(hit)).isEqualTo(1);
        assertThat(pool.allocate()).as("a retained block is never handed out").isEqualTo(second);

        // ...and releasing it again makes it the most recently freed.
        pool.release(hit);
        assertThat(pool.allocate()).isEqualTo(third);
        assertThat(pool.allocate()).isEqualTo(first);
        assertThat(pool.allocate()).isEqualTo(-1);
    }

    @Test
    void lookupNeedsTheSameParentAndTokensNotOnlyTheHash() {
        BlockPool pool = new BlockPool(4, BLOCK_SIZE);
        int block = pool.allocate();
        long parent = PrefixHash.extend(PrefixHash.ROOT, tokens(1), 0, BLOCK_SIZE);
        long hash = PrefixHash.extend(parent, tokens(2), 0, BLOCK_SIZE);
        pool.register(block, hash, parent, tokens(2));

        assertThat(pool.lookup(hash, parent, tokens(2))).isEqualTo(block);
        assertThat(pool.lookup(hash, parent, tokens(2).clone())).as("tokens compare by value").isEqualTo(block);
        assertThat(pool.lookup(hash, PrefixHash.ROOT, tokens(2))).as("another parent").isEqualTo(-1);
        assertThat(pool.lookup(hash, parent, tokens(3))).as("other tokens under the same hash").isEqualTo(-1);
        int[] oneChanged = tokens(2);
        oneChanged[BLOCK_SIZE - 1]++;
        assertThat(pool.lookup(hash, parent, oneChanged)).isEqualTo(-1);
        assertThat(pool.lookup(hash + 1, parent, tokens(2))).as("another hash").isEqualTo(-1);
        assertThat(pool.references(block)).as("lookup does not retain").isEqualTo(1);
    }

    @Test
    void aHashCollisionKeepsTheFirstBlockAndNeverMatchesTheOtherTokens() {
        BlockPool pool = new BlockPool(4, BLOCK_SIZE);
        long collidingHash = 42;
        int first = pool.allocate();
        int second = pool.allocate();
        pool.register(first, collidingHash, PrefixHash.ROOT, tokens(1));
        pool.register(second, collidingHash, PrefixHash.ROOT, tokens(2));

        assertThat(pool.lookup(collidingHash, PrefixHash.ROOT, tokens(1))).isEqualTo(first);
        assertThat(pool.lookup(collidingHash, PrefixHash.ROOT, tokens(2)))
                .as("the second block's content is not indexed, and the first's tokens differ").isEqualTo(-1);
        assertThat(pool.cachedBlocks()).isEqualTo(1);

        // The second block's content is unknown to the pool, so it is reused before the cached one.
        pool.release(first);
        pool.release(second);
        assertThat(pool.allocate()).isEqualTo(second);
        assertThat(pool.lookup(collidingHash, PrefixHash.ROOT, tokens(1))).isEqualTo(first);
    }

    @Test
    void registeringContentAlreadyIndexedKeepsTheIndexedBlock() {
        BlockPool pool = new BlockPool(4, BLOCK_SIZE);
        int original = pool.allocate();
        int duplicate = pool.allocate();
        long hash = registerFirst(pool, original, 5);
        registerFirst(pool, duplicate, 5);

        assertThat(lookupFirst(pool, 5)).isEqualTo(original);
        assertThat(pool.cachedBlocks()).isEqualTo(1);

        // When the indexed block is evicted, its entry goes; the duplicate never took it over.
        pool.release(original);
        pool.release(duplicate);
        assertThat(pool.allocate()).as("the unindexed duplicate is reused first").isEqualTo(duplicate);
        assertThat(pool.lookup(hash, PrefixHash.ROOT, tokens(5))).isEqualTo(original);
        pool.allocate(); // the two never-used blocks
        pool.allocate();
        assertThat(pool.allocate()).isEqualTo(original);
        assertThat(lookupFirst(pool, 5)).isEqualTo(-1);
        assertThat(pool.cachedBlocks()).isZero();
    }

    @Test
    void aPartialBlockIsNeverIndexed() {
        BlockPool pool = new BlockPool(2, BLOCK_SIZE);
        int block = pool.allocate();
        int[] partial = Arrays.copyOf(tokens(1), BLOCK_SIZE - 1);
        long hash = PrefixHash.extend(PrefixHash.ROOT, partial, 0, partial.length);
        pool.register(block, hash, PrefixHash.ROOT, partial);
        assertThat(pool.lookup(hash, PrefixHash.ROOT, partial)).isEqualTo(-1);
        assertThat(pool.cachedBlocks()).isZero();
    }

    @Test
    void theIndexHoldsACopyOfTheTokensNotTheCallersArray() {
        BlockPool pool = new BlockPool(2, BLOCK_SIZE);
        int block = pool.allocate();
        int[] ids = tokens(3);
        long hash = PrefixHash.extend(PrefixHash.ROOT, ids, 0, BLOCK_SIZE);
        pool.register(block, hash, PrefixHash.ROOT, ids);
        Arrays.fill(ids, -1); // the caller's buffer is reused for the next block
        assertThat(pool.lookup(hash, PrefixHash.ROOT, tokens(3))).isEqualTo(block);
    }

    /**
     * Random allocate, retain, release, register and lookup operations against a model of the pool
     * (reference counts, the free queue in order, the index), checking after every operation that
     * the pool agrees: the block each allocation returns, every count, and every index entry. The
     * hashes come from a small set and the tokens from a few values, so that collisions, repeated
     * content and evictions are all frequent.
     */
    @Test
    void randomOperationsAgreeWithAModelOfThePool() {
        int total = 12;
        for (long seed = 1; seed <= 20; seed++) {
            Random random = new Random(seed);
            BlockPool pool = new BlockPool(total, BLOCK_SIZE);
            PoolModel model = new PoolModel(total);
            for (int op = 0; op < 2000; op++) {
                String step = "seed " + seed + ", operation " + op;
                int choice = random.nextInt(10);
                if (choice < 3) {
                    assertThat(pool.allocate()).as(step + ": allocate").isEqualTo(model.allocate());
                } else if (choice < 5) {
                    int block = model.someInUse(random);
                    if (block >= 0) {
                        pool.release(block);
                        model.release(block);
                    }
                } else if (choice < 6) {
                    int block = model.someInUse(random);
                    if (block >= 0) {
                        pool.retain(block);
                        model.retain(block);
                    }
                } else if (choice < 8) {
                    int block = model.someInUse(random);
                    if (block >= 0) {
                        Content content = Content.random(random);
                        pool.register(block, content.hash, content.parent, content.tokens);
                        model.register(block, content);
                    }
                } else {
                    // A prefix hit, as the serving cache makes one: look up, then retain what was found.
                    Content content = Content.random(random);
                    int found = pool.lookup(content.hash, content.parent, content.tokens);
                    assertThat(found).as(step + ": lookup").isEqualTo(model.lookup(content));
                    if (found >= 0 && random.nextBoolean()) {
                        pool.retain(found);
                        model.retain(found);
                    }
                }
                model.assertAgrees(pool, step);
            }
        }
    }

    /** A block's content as the index sees it; hash, parent and token values drawn from small sets. */
    record Content(long hash, long parent, int[] tokens) {

        static Content random(Random random) {
            int[] ids = new int[BLOCK_SIZE];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = random.nextInt(2);
            }
            return new Content(random.nextInt(6), random.nextInt(2), ids);
        }

        boolean matches(Content other) {
            return parent == other.parent && Arrays.equals(tokens, other.tokens);
        }
    }

    /** The pool as its javadoc describes it, written the obvious way. */
    static final class PoolModel {

        final int[] references;
        final Deque<Integer> freeQueue = new ArrayDeque<>(); // head: next to allocate
        final Map<Long, Integer> index = new HashMap<>();
        final Map<Integer, Content> cached = new HashMap<>(); // block → the content indexed under it
        long evictions;

        PoolModel(int total) {
            references = new int[total];
            for (int block = 0; block < total; block++) {
                freeQueue.addLast(block);
            }
        }

        int allocate() {
            Integer block = freeQueue.pollFirst();
            if (block == null) {
                return -1;
            }
            Content content = cached.remove(block);
            if (content != null) {
                index.remove(content.hash);
                evictions++;
            }
            references[block] = 1;
            return block;
        }

        void retain(int block) {
            if (references[block] == 0) {
                freeQueue.remove(block);
            }
            references[block]++;
        }

        void release(int block) {
            if (--references[block] == 0) {
                if (cached.containsKey(block)) {
                    freeQueue.addLast(block);
                } else {
                    freeQueue.addFirst(block);
                }
            }
        }

        void register(int block, Content content) {
            if (!cached.containsKey(block) && !index.containsKey(content.hash)) {
                index.put(content.hash, block);
                cached.put(block, content);
            }
        }

        int lookup(Content content) {
            Integer block = index.get(content.hash);
            return block != null && cached.get(block).matches(content) ? block : -1;
        }

        int someInUse(Random random) {
            List<Integer> inUse = new ArrayList<>();
            for (int block = 0; block < references.length; block++) {
                if (references[block] > 0) {
                    inUse.add(block);
                }
            }
            return inUse.isEmpty() ? -1 : inUse.get(random.nextInt(inUse.size()));
        }

        void assertAgrees(BlockPool pool, String step) {
            assertThat(pool.free()).as(step + ": free").isEqualTo(freeQueue.size());
            assertThat(pool.free() + pool.inUse()).as(step + ": free + in use").isEqualTo(pool.total());
            for (int block = 0; block < references.length; block++) {
                assertThat(pool.references(block)).as(step + ": references of block " + block)
                        .isEqualTo(references[block]);
            }
            assertThat(pool.cachedBlocks()).as(step + ": cached blocks").isEqualTo(index.size());
            assertThat(pool.evictions()).as(step + ": evictions").isEqualTo(evictions);
            for (Map.Entry<Integer, Content> entry : cached.entrySet()) {
                Content content = entry.getValue();
                assertThat(pool.lookup(content.hash, content.parent, content.tokens))
                        .as(step + ": cached block " + entry.getKey() + " is findable").isEqualTo(entry.getKey());
            }
        }
    }
}
