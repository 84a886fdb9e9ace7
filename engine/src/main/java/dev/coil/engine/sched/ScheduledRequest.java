package dev.coil.engine.sched;

import java.util.Arrays;
import java.util.function.IntUnaryOperator;

/**
 * What the scheduler tracks of one request: how many tokens it has (prompt plus generated), how
 * many of them the cache already holds, and the blocks and state slot it occupies. The engine
 * appends generated tokens with {@link #appendToken()}.
 */
public final class ScheduledRequest {

    private final String id;
    private final int promptLength;
    private final IntUnaryOperator tokenAt;
    private final boolean usesPrefixCache;
    private final int priority;
    private final String cacheSalt;
    /** The order the scheduler took it in (set by {@link Scheduler#add}). */
    private long arrival;
    private int tokenCount;
    private int computed;
    private int[] blocks = new int[4];
    private int blockCount;
    private int slot = -1;
    private long[] blockHashes = new long[4];
    private int hashedBlocks;
    private int cachedPromptTokens;
    private int preemptions;
    private boolean admitted;

    /**
     * @param tokenAt         token id at a position, for positions below {@link #tokenCount()}
     * @param usesPrefixCache false for requests that need every prompt position computed (prompt logprobs)
     */
    public ScheduledRequest(String id, int promptLength, IntUnaryOperator tokenAt, boolean usesPrefixCache) {
        this(id, promptLength, tokenAt, usesPrefixCache, 0);
    }

    /** @param priority under priority scheduling, lower runs sooner */
    public ScheduledRequest(String id, int promptLength, IntUnaryOperator tokenAt, boolean usesPrefixCache,
            int priority) {
        this(id, promptLength, tokenAt, usesPrefixCache, priority, null);
    }

    /** @param cacheSalt the prefix cache's salt (vLLM's cache_salt), or null */
    public ScheduledRequest(String id, int promptLength, IntUnaryOperator tokenAt, boolean usesPrefixCache,
            int priority, String cacheSalt) {
        this.id = id;
        this.priority = priority;
        this.cacheSalt = cacheSalt;
        this.promptLength = promptLength;
        this.tokenAt = tokenAt;
        this.usesPrefixCache = usesPrefixCache;
        this.tokenCount = promptLength;
    }

    public String id() {
        return id;
    }

    public int priority() {
        return priority;
    }

    /** The prefix cache's salt, or null: its prompt shares cached prefixes with requests of the same salt only. */
    public String cacheSalt() {
        return cacheSalt;
    }

    long arrival() {
        return arrival;
    }

    void setArrival(long value) {
        arrival = value;
    }

    public int promptLength() {
        return promptLength;
    }

    public int tokenAt(int position) {
        return tokenAt.applyAsInt(position);
    }

    /** tokens[from, to) as an array. */
    public int[] tokens(int from, int to) {
        int[] out = new int[to - from];
        for (int i = from; i < to; i++) {
            out[i - from] = tokenAt.applyAsInt(i);
        }
        return out;
    }

    public boolean usesPrefixCache() {
        return usesPrefixCache;
    }

    /** Prompt plus generated tokens. */
    public int tokenCount() {
        return tokenCount;
    }

    /** One more generated token (sampled from the last step's logits). */
    public void appendToken() {
        tokenCount++;
    }

    /** Positions whose K/V and state are in the cache. */
    public int computed() {
        return computed;
    }

    void setComputed(int computed) {
        this.computed = computed;
    }

    /** Prompt tokens the prefix cache served at the last admission. */
    public int cachedPromptTokens() {
        return cachedPromptTokens;
    }

    public void setCachedPromptTokens(int tokens) {
        this.cachedPromptTokens = tokens;
    }

    public int preemptions() {
        return preemptions;
    }

    void countPreemption() {
        preemptions++;
    }

    boolean admitted() {
        return admitted;
    }

    void setAdmitted(boolean admitted) {
        this.admitted = admitted;
    }

    public int blockCount() {
        return blockCount;
    }

    public int block(int index) {
        return blocks[index];
    }

    /** The block table: ids of blocks holding positions [0, blockCount · blockSize). */
    public int[] blockTable() {
        return Arrays.copyOf(blocks, blockCount);
    }

    public void addBlock(int block) {
        if (blockCount == blocks.length) {
            blocks = Arrays.copyOf(blocks, 2 * blocks.length);
        }
        blocks[blockCount++] = block;
    }

    public void setBlock(int index, int block) {
        blocks[index] = block;
    }

    /** Forgets the blocks (after they were released); the chain hashes, which depend on tokens only, stay. */
    public void clearBlocks() {
        blockCount = 0;
    }

    public int slot() {
        return slot;
    }

    public void setSlot(int slot) {
        this.slot = slot;
    }

    /** Chain hash of full block {@code index} (valid for index < hashedBlocks()). */
    public long blockHash(int index) {
        return blockHashes[index];
    }

    /** Full blocks whose chain hash is known. */
    public int hashedBlocks() {
        return hashedBlocks;
    }

    public void addBlockHash(long hash) {
        if (hashedBlocks == blockHashes.length) {
            blockHashes = Arrays.copyOf(blockHashes, 2 * blockHashes.length);
        }
        blockHashes[hashedBlocks++] = hash;
    }

    @Override
    public String toString() {
        return id + "[" + computed + "/" + tokenCount + ", " + blockCount + " blocks, slot " + slot + "]";
    }
}
