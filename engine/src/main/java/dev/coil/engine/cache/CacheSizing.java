package dev.coil.engine.cache;

import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.LayerState;
import java.util.ArrayList;
import java.util.List;

/**
 * How the cache budget splits into KV blocks, Mamba state slots and prefix-cache snapshots.
 *
 * @param slots    state slots, which is also the most sequences that run at once
 * @param blocks   KV blocks (for a model without attention, bookkeeping units that never run out)
 * @param warnings what had to be clamped, for the log; the engine starts anyway
 */
public record CacheSizing(int blockSize, DType kvDtype, int blocks, int slots, boolean prefixCaching,
        int snapshotIntervalBlocks, long snapshotBytes, long blockBytes, long slotBytes, List<String> warnings) {

    /** Share of the budget kept for prefix-cache state snapshots in models with Mamba layers. */
    static final double SNAPSHOT_SHARE = 0.1;
    /** Most of the rest that state slots may take, so KV blocks keep at least half. */
    static final double SLOT_SHARE = 0.5;
    /** Context assumed for capping when config.json names none. */
    static final int DEFAULT_CONTEXT = 8192;

    public CacheSizing {
        warnings = List.copyOf(warnings);
    }

    /**
     * @param budgetBytes  --cache-memory, resolved to bytes
     * @param maxSequences --max-seqs
     * @param contextLength the model's context window (0: unknown)
     * @param sampleStates one sequence's layer states (model.newLayerStates()), to measure a slot
     */
    public static CacheSizing plan(long budgetBytes, int blockSize, DType kvDtype, int maxSequences, int contextLength,
            boolean prefixCaching, int snapshotIntervalBlocks, List<BlockSpec> blocks, LayerState[] sampleStates) {
        List<String> warnings = new ArrayList<>();
        long slotBytes = 0;
        for (LayerState state : sampleStates) {
            if (state instanceof LayerState.Mamba mamba) {
                slotBytes += mamba.bytes();
            }
        }
        long blockBytes = PooledKeyValueStore.blockBytes(blocks, kvDtype, blockSize);
        int context = contextLength > 0 ? contextLength : DEFAULT_CONTEXT;
        int blocksPerSequence = Math.ceilDiv(context, blockSize);

        long snapshotBytes = slotBytes > 0 && prefixCaching ? (long) (budgetBytes * SNAPSHOT_SHARE) : 0;
        long remaining = budgetBytes - snapshotBytes;
        int slots = maxSequences;
        if (slotBytes > 0) {
            long fits = (long) (remaining * SLOT_SHARE) / slotBytes;
            if (fits == 0) {
                // Not even one: the engine still runs one sequence, over the budget, and says so.
                slots = 1;
                warnings.add(String.format("the cache budget of %s cannot hold one sequence's Mamba state (%s, at most"
                        + " half of what the prefix snapshots leave): one sequence runs, over the budget (raise"
                        + " --cache-memory)", bytes(budgetBytes), bytes(slotBytes)));
            } else if (fits < maxSequences) {
                slots = (int) fits;
                warnings.add(String.format("--max-seqs lowered from %d to %d: one sequence's Mamba state takes %s"
                        + " and the cache budget is %s (raise --cache-memory for more)", maxSequences, slots,
                        bytes(slotBytes), bytes(budgetBytes)));
            }
        }
        long kvBytes = Math.max(0, remaining - slots * slotBytes);
        int blockCount;
        long cap = (long) slots * blocksPerSequence;
        if (blockBytes > 0) {
            blockCount = (int) Math.min(Math.min(kvBytes / blockBytes, cap), Integer.MAX_VALUE - 8);
            if (blockCount < blocksPerSequence) {
                blockCount = Math.max(blockCount, 1);
                warnings.add(String.format("the KV cache holds %d tokens, less than the context window of %d: longer"
                        + " requests are refused (raise --cache-memory)", (long) blockCount * blockSize, context));
            }
        } else {
            blockCount = (int) Math.min(cap, Integer.MAX_VALUE - 8);
        }
        return new CacheSizing(blockSize, kvDtype, blockCount, slots, prefixCaching, snapshotIntervalBlocks,
                snapshotBytes, blockBytes, slotBytes, warnings);
    }

    /** Bytes for a warning: MiB with one decimal, or plain bytes below a tenth of a MiB (which would read 0.0). */
    private static String bytes(long count) {
        return count < 104858 ? count + " bytes" : String.format("%.1f MiB", count / 1048576.0);
    }
}
