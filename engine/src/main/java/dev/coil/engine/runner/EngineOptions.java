package dev.coil.engine.runner;

import dev.coil.engine.load.DType;

/**
 * How the serving engine sizes its cache and batches.
 *
 * @param blockSize              tokens per KV block
 * @param kvDtype                storage of cached keys and values: BF16 (default) or F32
 * @param cacheMemory            the KV + state budget: "4G", "512M", bytes, or a fraction of free memory ("0.3")
 * @param maxSequences           requests in one step (vLLM's --max-num-seqs); clamped to what the state pool fits
 * @param maxBatchedTokens       tokens in one step, prefill chunks and decodes together
 * @param maxWaiting             queued requests before submit() answers overloaded
 * @param prefixCaching          reuse KV blocks and Mamba states of earlier prompts
 * @param snapshotIntervalBlocks during prefill, snapshot Mamba state at multiples of this many blocks, at most once
 *                               a prompt chunk (at the last multiple it reaches; 0: only at request end)
 * @param maxModelLength         vLLM's --max-model-len: the context window served, prompt and output together, at
 *                               most the model's (0: the model's)
 * @param batchInvariant         --batch-invariant: a request's tokens and logprobs do not depend on the requests
 *                               beside it, bit for bit: its prompt is cut into chunks by its own length alone
 *                               (Scheduler), the prefix cache is off (a hit would depend on earlier requests), and
 *                               the backend must be opened batch-invariant too (Backends.open; the engine refuses
 *                               one that is not, and a batch-invariant backend without this option)
 * @param priorityScheduling     vLLM's --scheduling-policy priority: waiting requests are admitted by their
 *                               priority (lower first), then by arrival, and a step that runs out of blocks
 *                               preempts the running request of the worst priority (the newest among equals),
 *                               and a waiting request preempts a running one of a strictly worse priority;
 *                               else first come first served, where a request's priority must be 0
 */
public record EngineOptions(int blockSize, DType kvDtype, String cacheMemory, int maxSequences, int maxBatchedTokens,
        int maxWaiting, boolean prefixCaching, int snapshotIntervalBlocks, int maxModelLength, boolean batchInvariant,
        boolean priorityScheduling) {

    public static final EngineOptions DEFAULTS = new EngineOptions(16, DType.BF16, "0.2", 64, 1024, 512, true, 16, 0);

    /** The options scheduling first come first served. */
    public EngineOptions(int blockSize, DType kvDtype, String cacheMemory, int maxSequences, int maxBatchedTokens,
            int maxWaiting, boolean prefixCaching, int snapshotIntervalBlocks, int maxModelLength,
            boolean batchInvariant) {
        this(blockSize, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting, prefixCaching,
                snapshotIntervalBlocks, maxModelLength, batchInvariant, false);
    }

    /** The options without --batch-invariant. */
    public EngineOptions(int blockSize, DType kvDtype, String cacheMemory, int maxSequences, int maxBatchedTokens,
            int maxWaiting, boolean prefixCaching, int snapshotIntervalBlocks, int maxModelLength) {
        this(blockSize, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting, prefixCaching,
                snapshotIntervalBlocks, maxModelLength, false);
    }

    /** The options without a --max-model-len (the model's context window). */
    public EngineOptions(int blockSize, DType kvDtype, String cacheMemory, int maxSequences, int maxBatchedTokens,
            int maxWaiting, boolean prefixCaching, int snapshotIntervalBlocks) {
        this(blockSize, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting, prefixCaching,
                snapshotIntervalBlocks, 0);
    }

    public EngineOptions {
        if (blockSize <= 0 || Integer.bitCount(blockSize) != 1 || blockSize > 1024) {
            throw new IllegalArgumentException("--block-size must be a power of two in [1, 1024], got " + blockSize);
        }
        if (kvDtype != DType.BF16 && kvDtype != DType.F32) {
            throw new IllegalArgumentException("--kv-dtype must be bf16 or f32, got " + kvDtype);
        }
        CacheBudget.parse(cacheMemory);
        if (maxSequences <= 0) {
            throw new IllegalArgumentException("--max-seqs must be positive, got " + maxSequences);
        }
        if (maxBatchedTokens < maxSequences) {
            throw new IllegalArgumentException("--max-batched-tokens (" + maxBatchedTokens
                    + ") must be at least --max-seqs (" + maxSequences + "): every running request decodes each step");
        }
        if (maxWaiting < 0) {
            throw new IllegalArgumentException("--max-waiting must be >= 0, got " + maxWaiting);
        }
        if (snapshotIntervalBlocks < 0) {
            throw new IllegalArgumentException("--snapshot-interval must be >= 0, got " + snapshotIntervalBlocks);
        }
        if (maxModelLength < 0) {
            throw new IllegalArgumentException("--max-model-len must be positive, got " + maxModelLength);
        }
    }

    public EngineOptions withBlockSize(int value) {
        return new EngineOptions(value, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting,
                prefixCaching, snapshotIntervalBlocks, maxModelLength, batchInvariant, priorityScheduling);
    }

    public EngineOptions withKvDtype(DType value) {
        return new EngineOptions(blockSize, value, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting,
                prefixCaching, snapshotIntervalBlocks, maxModelLength, batchInvariant, priorityScheduling);
    }

    public EngineOptions withCacheMemory(String value) {
        return new EngineOptions(blockSize, kvDtype, value, maxSequences, maxBatchedTokens, maxWaiting,
                prefixCaching, snapshotIntervalBlocks, maxModelLength, batchInvariant, priorityScheduling);
    }

    public EngineOptions withMaxSequences(int value) {
        return new EngineOptions(blockSize, kvDtype, cacheMemory, value, Math.max(value, maxBatchedTokens), maxWaiting,
                prefixCaching, snapshotIntervalBlocks, maxModelLength, batchInvariant, priorityScheduling);
    }

    public EngineOptions withMaxBatchedTokens(int value) {
        return new EngineOptions(blockSize, kvDtype, cacheMemory, maxSequences, value, maxWaiting, prefixCaching,
                snapshotIntervalBlocks, maxModelLength, batchInvariant, priorityScheduling);
    }

    public EngineOptions withMaxWaiting(int value) {
        return new EngineOptions(blockSize, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, value,
                prefixCaching, snapshotIntervalBlocks, maxModelLength, batchInvariant, priorityScheduling);
    }

    public EngineOptions withPrefixCaching(boolean value) {
        return new EngineOptions(blockSize, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting, value,
                snapshotIntervalBlocks, maxModelLength, batchInvariant, priorityScheduling);
    }

    public EngineOptions withSnapshotIntervalBlocks(int value) {
        return new EngineOptions(blockSize, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting,
                prefixCaching, value, maxModelLength, batchInvariant, priorityScheduling);
    }

    public EngineOptions withMaxModelLength(int value) {
        return new EngineOptions(blockSize, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting,
                prefixCaching, snapshotIntervalBlocks, value, batchInvariant, priorityScheduling);
    }

    public EngineOptions withBatchInvariant(boolean value) {
        return new EngineOptions(blockSize, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting,
                prefixCaching, snapshotIntervalBlocks, maxModelLength, value, priorityScheduling);
    }

    public EngineOptions withPriorityScheduling(boolean value) {
        return new EngineOptions(blockSize, kvDtype, cacheMemory, maxSequences, maxBatchedTokens, maxWaiting,
                prefixCaching, snapshotIntervalBlocks, maxModelLength, batchInvariant, value);
    }

    /** Whether the prefix cache is used: asked for, and not batch-invariant. */
    public boolean usesPrefixCache() {
        return prefixCaching && !batchInvariant;
    }

    /** The context window served: --max-model-len where given, else the model's ({@code modelWindow}, 0: none). */
    public int contextWindow(int modelWindow) {
        return maxModelLength > 0 ? maxModelLength : modelWindow;
    }
}
