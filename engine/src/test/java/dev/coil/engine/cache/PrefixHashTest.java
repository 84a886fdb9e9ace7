package dev.coil.engine.cache;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The prefix cache's chain hashes: a block's hash depends on its parent's hash and on its tokens (values,
 * order and count), only on the tokens in the range given, and equal prefixes give equal chains.
 */
class PrefixHashTest {

    static final int BLOCK_SIZE = 16;

    /** The chain hash after each full block of {@code tokens}, as the serving cache builds it. */
    static long[] chain(int[] tokens) {
        long[] hashes = new long[tokens.length / BLOCK_SIZE];
        long parent = PrefixHash.ROOT;
        for (int i = 0; i < hashes.length; i++) {
            parent = PrefixHash.extend(parent, tokens, i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
            hashes[i] = parent;
        }
        return hashes;
    }

    static int[] randomTokens(Random random, int length) {
        int[] ids = new int[length];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = random.nextInt(50_000);
        }
        return ids;
    }

    @Test
    void equalPrefixesGiveEqualChainsWhateverFollows() {
        Random random = new Random(3);
        int[] shared = randomTokens(random, 3 * BLOCK_SIZE);
        int[] first = Arrays.copyOf(shared, 5 * BLOCK_SIZE);
        int[] second = Arrays.copyOf(shared, 6 * BLOCK_SIZE);
        System.arraycopy(randomTokens(random, 2 * BLOCK_SIZE), 0, first, 3 * BLOCK_SIZE, 2 * BLOCK_SIZE);
        System.arraycopy(randomTokens(random, 3 * BLOCK_SIZE), 0, second, 3 * BLOCK_SIZE, 3 * BLOCK_SIZE);

        long[] firstChain = chain(first);
        long[] secondChain = chain(second);
        assertThat(Arrays.copyOf(firstChain, 3)).isEqualTo(Arrays.copyOf(secondChain, 3));
        assertThat(firstChain[3]).isNotEqualTo(secondChain[3]);
        assertThat(firstChain[4]).isNotEqualTo(secondChain[4]);
    }

    @Test
    void aChangedTokenChangesItsBlocksHashAndEveryLaterOne() {
        Random random = new Random(5);
        int[] tokens = randomTokens(random, 4 * BLOCK_SIZE);
        int[] changed = tokens.clone();
        changed[BLOCK_SIZE + 7]++;

        long[] original = chain(tokens);
        long[] after = chain(changed);
        assertThat(after[0]).as("the block before the change").isEqualTo(original[0]);
        for (int i = 1; i < 4; i++) {
            assertThat(after[i]).as("block %d", i).isNotEqualTo(original[i]);
        }
    }

    @Test
    void theHashCoversOnlyTheRangeGiven() {
        Random random = new Random(7);
        int[] tokens = randomTokens(random, 3 * BLOCK_SIZE);
        long parent = PrefixHash.extend(PrefixHash.ROOT, tokens, 0, BLOCK_SIZE);
        int[] middle = Arrays.copyOfRange(tokens, BLOCK_SIZE, 2 * BLOCK_SIZE);
        long inPlace = PrefixHash.extend(parent, tokens, BLOCK_SIZE, 2 * BLOCK_SIZE);

        assertThat(PrefixHash.extend(parent, middle, 0, BLOCK_SIZE)).as("a copy of the range").isEqualTo(inPlace);
        int[] edited = tokens.clone();
        edited[BLOCK_SIZE - 1] = -5;
        edited[2 * BLOCK_SIZE] = -5;
        assertThat(PrefixHash.extend(parent, edited, BLOCK_SIZE, 2 * BLOCK_SIZE))
                .as("tokens just outside the range do not count").isEqualTo(inPlace);
    }

    @Test
    void anotherParentGivesAnotherHash() {
        Random random = new Random(11);
        int[] tokens = randomTokens(random, BLOCK_SIZE);
        Set<Long> hashes = new HashSet<>();
        Set<Long> parents = new HashSet<>();
        parents.add(PrefixHash.ROOT);
        hashes.add(PrefixHash.extend(PrefixHash.ROOT, tokens, 0, BLOCK_SIZE));
        while (parents.size() < 10_000) {
            long parent = random.nextLong();
            if (parents.add(parent)) {
                hashes.add(PrefixHash.extend(parent, tokens, 0, BLOCK_SIZE));
            }
        }
        // The mixer is a bijection, so the same tokens after distinct parents can never collide.
        assertThat(hashes).hasSize(parents.size());
    }

    @Test
    void tokenOrderMatters() {
        int[] ascending = new int[BLOCK_SIZE];
        for (int i = 0; i < BLOCK_SIZE; i++) {
            ascending[i] = i + 1;
        }
        int[] swapped = ascending.clone();
        swapped[0] = ascending[1];
        swapped[1] = ascending[0];
        int[] reversed = new int[BLOCK_SIZE];
        for (int i = 0; i < BLOCK_SIZE; i++) {
            reversed[i] = ascending[BLOCK_SIZE - 1 - i];
        }
        long original = PrefixHash.extend(PrefixHash.ROOT, ascending, 0, BLOCK_SIZE);
        assertThat(PrefixHash.extend(PrefixHash.ROOT, swapped, 0, BLOCK_SIZE)).isNotEqualTo(original);
        assertThat(PrefixHash.extend(PrefixHash.ROOT, reversed, 0, BLOCK_SIZE)).isNotEqualTo(original);
    }

    @Test
    void theTailsLengthCountsSoZerosDoNotVanish() {
        // A snapshot's key is the last full block's hash extended by the tail: tails of 0, 1 and 2
        // zero tokens are different prefixes and must not share a key.
        long parent = PrefixHash.extend(PrefixHash.ROOT, new int[BLOCK_SIZE], 0, BLOCK_SIZE);
        long empty = PrefixHash.extend(parent, new int[0], 0, 0);
        long one = PrefixHash.extend(parent, new int[1], 0, 1);
        long two = PrefixHash.extend(parent, new int[2], 0, 2);
        assertThat(new long[] {empty, one, two}).doesNotHaveDuplicates();
    }

    @Test
    void oneBlockOfTwoIsNotTheSameAsTwoBlocks() {
        int[] tokens = {1, 2, 3, 4};
        long joined = PrefixHash.extend(PrefixHash.ROOT, tokens, 0, 4);
        long chained = PrefixHash.extend(PrefixHash.extend(PrefixHash.ROOT, tokens, 0, 2), tokens, 2, 4);
        assertThat(chained).isNotEqualTo(joined);
    }

    @Test
    void tokenIdsAreTakenAsUnsigned32BitValues() {
        // Ids are non-negative in practice; the hash must still tell -1 (0xFFFFFFFF) from 0 and from
        // Integer.MAX_VALUE.
        long minusOne = PrefixHash.extend(PrefixHash.ROOT, new int[] {-1}, 0, 1);
        long zero = PrefixHash.extend(PrefixHash.ROOT, new int[] {0}, 0, 1);
        long largest = PrefixHash.extend(PrefixHash.ROOT, new int[] {Integer.MAX_VALUE}, 0, 1);
        assertThat(new long[] {minusOne, zero, largest}).doesNotHaveDuplicates();
    }

    @Test
    void hashesAreStableAcrossCalls() {
        int[] tokens = randomTokens(new Random(13), 2 * BLOCK_SIZE);
        assertThat(chain(tokens)).isEqualTo(chain(tokens.clone()));
    }

    /**
     * 200,000 random blocks from a small vocabulary, chained and unchained, give no collision among
     * distinct prefixes: the index compares tokens anyway, but a collision costs a cache hit.
     */
    @Test
    void manyDistinctPrefixesGiveDistinctHashes() {
        Random random = new Random(17);
        Map<Long, String> seen = new HashMap<>();
        int blockSize = 4;
        for (int sequence = 0; sequence < 50_000; sequence++) {
            int[] tokens = new int[4 * blockSize];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = random.nextInt(8); // repeats are common: equal prefixes must land on one hash
            }
            long parent = PrefixHash.ROOT;
            for (int block = 0; block < 4; block++) {
                parent = PrefixHash.extend(parent, tokens, block * blockSize, (block + 1) * blockSize);
                String prefix = Arrays.toString(Arrays.copyOf(tokens, (block + 1) * blockSize));
                String previous = seen.putIfAbsent(parent, prefix);
                assertThat(previous == null || previous.equals(prefix))
                        .as("%s and %s share the hash %x", previous, prefix, parent).isTrue();
            }
        }
        assertThat(seen).hasSizeGreaterThan(100_000);
    }
}
