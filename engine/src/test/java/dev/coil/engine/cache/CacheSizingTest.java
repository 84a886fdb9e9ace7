package dev.coil.engine.cache;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.load.DType;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.model.LayerState;
import dev.coil.engine.model.TestModels;
import dev.coil.engine.runner.LoadedModel;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * How {@code --cache-memory} splits: a tenth for prefix snapshots when the model has Mamba layers and
 * prefix caching is on, one state slot per sequence (at most half of the rest, --max-seqs lowered
 * with a warning otherwise), KV blocks for what remains (at most a context window per slot, with a
 * warning when not even one fits). Each expected number is worked out by hand in the comments, for
 * models of realistic size built from their layer shapes and for the hybrid test fixture.
 */
class CacheSizingTest {

    static final long GIB = 1L << 30;
    static final long MIB = 1L << 20;

    /**
     * A 40-layer hybrid: 36 Mamba-2 layers (48 heads of 64, 1 group, state 128, conv kernel 4) and 4
     * attention layers (4 KV heads of 128).
     */
    static final List<BlockSpec> HYBRID = hybrid();

    /** A 16-layer attention-only model (8 KV heads of 64), each layer followed by its MLP. */
    static final List<BlockSpec> ATTENTION_ONLY = attentionOnly();

    /** A 24-layer Mamba-2-only model (24 heads of 64, 1 group, state 128, conv kernel 4). */
    static final List<BlockSpec> MAMBA_ONLY = mambaOnly();

    static BlockSpec.Mamba mamba(int layer, int heads, int headDim, int groups, int stateSize) {
        return new BlockSpec.Mamba(layer, "m" + layer + ".", "m" + layer + ".norm", heads, headDim, groups, stateSize,
                4, 256, true, false, 0f, Float.POSITIVE_INFINITY, heads * headDim, 1e-5f);
    }

    static BlockSpec.Attention attention(int layer, int queryHeads, int kvHeads, int headDim) {
        return new BlockSpec.Attention(layer, "a" + layer + ".", "a" + layer + ".norm", queryHeads, kvHeads, headDim,
                (float) (1 / Math.sqrt(headDim)), headDim, 10000f, false);
    }

    static List<BlockSpec> hybrid() {
        List<BlockSpec> blocks = new ArrayList<>();
        for (int layer = 0; layer < 40; layer++) {
            blocks.add(layer % 10 == 5 ? attention(layer, 12, 4, 128) : mamba(layer, 48, 64, 1, 128));
        }
        return blocks;
    }

    static List<BlockSpec> attentionOnly() {
        List<BlockSpec> blocks = new ArrayList<>();
        for (int layer = 0; layer < 16; layer++) {
            blocks.add(attention(2 * layer, 32, 8, 64));
            blocks.add(new BlockSpec.Mlp(2 * layer + 1, "f.", "f.norm", BlockSpec.MlpKind.GATED_SILU, 8192, false));
        }
        return blocks;
    }

    static List<BlockSpec> mambaOnly() {
        List<BlockSpec> blocks = new ArrayList<>();
        for (int layer = 0; layer < 24; layer++) {
            blocks.add(mamba(layer, 24, 64, 1, 128));
        }
        return blocks;
    }

    /** One sequence's layer states, shaped as the Mamba-2 mixer allocates them; null for other layers. */
    static LayerState[] states(List<BlockSpec> blocks) {
        LayerState[] states = new LayerState[blocks.size()];
        for (int i = 0; i < states.length; i++) {
            if (blocks.get(i) instanceof BlockSpec.Mamba m) {
                states[i] = new LayerState.Mamba(new float[(m.convKernel() - 1) * m.convChannels()],
                        new float[m.heads() * m.headDim() * m.stateSize()]);
            }
        }
        return states;
    }

    static CacheSizing plan(List<BlockSpec> blocks, long budget, int maxSequences, int contextLength,
            boolean prefixCaching) {
        return CacheSizing.plan(budget, 16, DType.BF16, maxSequences, contextLength, prefixCaching, 64, blocks,
                states(blocks));
    }

    @Test
    void aHybridWithRoomForEverySequenceGivesATenthToSnapshotsAndTheRestToBlocks() {
        CacheSizing sizing = plan(HYBRID, 8 * GIB, 64, 131_072, true);

        // Slot: per Mamba layer, conv 3 × (48·64 + 2·1·128) = 9,984 floats and ssm 48·64·128 = 393,216
        // floats, in f32: 1,612,800 bytes; × 36 layers = 58,060,800.
        assertThat(sizing.slotBytes()).isEqualTo(58_060_800L);
        // Block: K and V, 16 tokens × 4 heads × 128 in bf16 = 32,768 bytes a layer; × 4 layers.
        assertThat(sizing.blockBytes()).isEqualTo(131_072L);
        // Snapshots: ⌊8,589,934,592 / 10⌋. Rest: 7,730,941,133, of which slots may take 3,865,470,566:
        // 64 slots take 3,715,891,200, so all 64 fit.
        assertThat(sizing.snapshotBytes()).isEqualTo(858_993_459L);
        assertThat(sizing.slots()).isEqualTo(64);
        // Blocks: ⌊(7,730,941,133 − 3,715,891,200) / 131,072⌋ = ⌊4,015,049,933 / 131,072⌋, far below the
        // cap of 64 sequences × 8,192 blocks.
        assertThat(sizing.blocks()).isEqualTo(30_632);
        assertThat(sizing.warnings()).isEmpty();
    }

    @Test
    void aHybridWhoseSlotsDoNotFitLowersMaxSequencesWithAWarning() {
        CacheSizing sizing = plan(HYBRID, 4 * GIB, 64, 131_072, true);

        // Snapshots: ⌊4,294,967,296 / 10⌋ = 429,496,729. Rest: 3,865,470,567; half of it, 1,932,735,283,
        // holds ⌊1,932,735,283 / 58,060,800⌋ = 33 slots (1,916,006,400 bytes).
        assertThat(sizing.snapshotBytes()).isEqualTo(429_496_729L);
        assertThat(sizing.slots()).isEqualTo(33);
        // Blocks: ⌊(3,865,470,567 − 1,916,006,400) / 131,072⌋ = ⌊1,949,464,167 / 131,072⌋.
        assertThat(sizing.blocks()).isEqualTo(14_873);
        assertThat(sizing.warnings()).singleElement().asString().startsWith("--max-seqs lowered from 64 to 33:");
    }

    @Test
    void withoutPrefixCachingNothingGoesToSnapshots() {
        CacheSizing sizing = plan(HYBRID, 4 * GIB, 64, 131_072, false);

        // Half of 4,294,967,296 holds ⌊2,147,483,648 / 58,060,800⌋ = 36 slots (2,090,188,800 bytes);
        // blocks: ⌊2,204,778,496 / 131,072⌋.
        assertThat(sizing.snapshotBytes()).isZero();
        assertThat(sizing.prefixCaching()).isFalse();
        assertThat(sizing.slots()).isEqualTo(36);
        assertThat(sizing.blocks()).isEqualTo(16_821);
        assertThat(sizing.warnings()).singleElement().asString().startsWith("--max-seqs lowered from 64 to 36:");
    }

    @Test
    void anAttentionOnlyModelKeepsNoSnapshotsOrSlotBytesAndWarnsWhenAContextDoesNotFit() {
        CacheSizing sizing = plan(ATTENTION_ONLY, 2 * GIB, 16, 131_072, true);

        // Block: 2 × 16 tokens × 8 heads × 64 × 2 bytes = 32,768 a layer; × 16 layers = 524,288 (the MLPs
        // hold nothing). All 2 GiB go to blocks: 4,096 of them, 65,536 tokens, less than one context
        // window of 131,072 (8,192 blocks).
        assertThat(sizing.blockBytes()).isEqualTo(524_288L);
        assertThat(sizing.slotBytes()).isZero();
        assertThat(sizing.snapshotBytes()).isZero();
        assertThat(sizing.slots()).as("--max-seqs as given: slots cost nothing").isEqualTo(16);
        assertThat(sizing.blocks()).isEqualTo(4_096);
        assertThat(sizing.warnings()).containsExactly("the KV cache holds 65536 tokens, less than the context window"
                + " of 131072: longer requests are refused (raise --cache-memory)");
    }

    @Test
    void blocksAreCappedAtOneContextWindowPerSequence() {
        // 8 GiB would hold 16,384 blocks; 16 sequences of the default 8,192-token context need 16 × 512.
        CacheSizing unknownContext = plan(ATTENTION_ONLY, 8 * GIB, 16, 0, true);
        assertThat(unknownContext.blocks()).isEqualTo(8_192);
        assertThat(unknownContext.warnings()).isEmpty();

        // With the model's own 131,072-token context the cap (16 × 8,192) is far away: the budget rules.
        CacheSizing knownContext = plan(ATTENTION_ONLY, 8 * GIB, 16, 131_072, true);
        assertThat(knownContext.blocks()).isEqualTo(16_384);
        assertThat(knownContext.warnings()).isEmpty();
    }

    @Test
    void f32BlocksTakeTwiceTheBytesOfBf16() {
        CacheSizing bf16 = CacheSizing.plan(2 * GIB, 16, DType.BF16, 16, 131_072, true, 64, ATTENTION_ONLY,
                states(ATTENTION_ONLY));
        CacheSizing f32 = CacheSizing.plan(2 * GIB, 16, DType.F32, 16, 131_072, true, 64, ATTENTION_ONLY,
                states(ATTENTION_ONLY));
        assertThat(f32.blockBytes()).isEqualTo(2 * bf16.blockBytes());
        assertThat(f32.blocks()).isEqualTo(2_048);
        assertThat(f32.kvDtype()).isEqualTo(DType.F32);
    }

    @Test
    void aMambaOnlyModelGetsBookkeepingBlocksForAContextWindowPerSlot() {
        CacheSizing sizing = plan(MAMBA_ONLY, GIB, 16, 2048, true);

        // Slot: per layer, conv 3 × (24·64 + 2·1·128) = 5,376 floats and ssm 24·64·128 = 196,608 floats,
        // in f32: 807,936 bytes; × 24 layers = 19,390,464. Snapshots ⌊1,073,741,824 / 10⌋; half of the
        // rest (483,183,821) holds 24 slots, so all 16 fit. Blocks cost nothing: 16 × 2048 / 16 of them.
        assertThat(sizing.slotBytes()).isEqualTo(19_390_464L);
        assertThat(sizing.blockBytes()).isZero();
        assertThat(sizing.snapshotBytes()).isEqualTo(107_374_182L);
        assertThat(sizing.slots()).isEqualTo(16);
        assertThat(sizing.blocks()).isEqualTo(2_048);
        assertThat(sizing.warnings()).isEmpty();

        // 256 MiB: snapshots 26,843,545; half the rest, 120,795,955, holds 6 slots.
        CacheSizing small = plan(MAMBA_ONLY, 256 * MIB, 16, 2048, true);
        assertThat(small.snapshotBytes()).isEqualTo(26_843_545L);
        assertThat(small.slots()).isEqualTo(6);
        assertThat(small.blocks()).isEqualTo(6 * 128);
        assertThat(small.warnings()).singleElement().asString().startsWith("--max-seqs lowered from 16 to 6:");
    }

    @Test
    void theHybridFixtureIsMeasuredFromItsOwnLayerStates() {
        LoadedModel model = TestModels.load("granitemoehybrid");
        CacheSizing sizing = CacheSizing.plan(150_000, 16, DType.BF16, 4, model.config().contextLength(), true, 16,
                model.config().blocks(), model.model().newLayerStates());

        // config.json: 2 Mamba layers of 8 heads × 8, 2 groups, state 8, conv kernel 4: conv 3 × (64 +
        // 2·2·8) = 288 floats and ssm 8·8·8 = 512, 3,200 bytes a layer, 6,400 a slot. 2 attention layers
        // of 2 KV heads × 8 (hidden 32 / 4 heads): 2 × 16 × 2 × 8 × 2 bytes = 1,024 a layer, 2,048 a block.
        assertThat(sizing.slotBytes()).isEqualTo(6_400L);
        assertThat(sizing.blockBytes()).isEqualTo(2_048L);
        // Snapshots 15,000; rest 135,000, half of it holds 10 slots, so 4 fit (25,600 bytes); blocks
        // ⌊109,400 / 2,048⌋ = 53, under the cap of 4 × 256 / 16.
        assertThat(sizing.snapshotBytes()).isEqualTo(15_000L);
        assertThat(sizing.slots()).isEqualTo(4);
        assertThat(sizing.blocks()).isEqualTo(53);
        assertThat(sizing.warnings()).isEmpty();
    }

    @Test
    void aBudgetTooSmallForOneSequenceStillGivesOneSlotAndOneBlockWithWarnings() {
        // 1,000 bytes hold neither a 6,400-byte slot nor a 2,048-byte block: the engine starts anyway,
        // with one of each, and says why.
        LoadedModel model = TestModels.load("granitemoehybrid");
        CacheSizing sizing = CacheSizing.plan(1_000, 16, DType.BF16, 4, model.config().contextLength(), true, 16,
                model.config().blocks(), model.model().newLayerStates());
        assertThat(sizing.slots()).isEqualTo(1);
        assertThat(sizing.blocks()).isEqualTo(1);
        assertThat(sizing.warnings()).hasSize(2);
        assertThat(sizing.warnings().get(0)).startsWith("the cache budget of 1000 bytes cannot hold one sequence's"
                + " Mamba state (6400 bytes,");
        assertThat(sizing.warnings().get(1)).startsWith("the KV cache holds 16 tokens, less than the context window"
                + " of 256:");
    }

    @Test
    void oneSequenceAskedForThatDoesNotFitIsNotCalledALowering() {
        // 10,000 bytes: snapshots 1,000, half the rest 4,500, under one 6,400-byte slot. --max-seqs 1
        // is not lowered; the budget is too small for the one sequence that runs anyway.
        LoadedModel model = TestModels.load("granitemoehybrid");
        CacheSizing sizing = CacheSizing.plan(10_000, 16, DType.BF16, 1, model.config().contextLength(), true, 16,
                model.config().blocks(), model.model().newLayerStates());
        assertThat(sizing.slots()).isEqualTo(1);
        assertThat(sizing.warnings()).noneMatch(warning -> warning.startsWith("--max-seqs lowered"));
        assertThat(sizing.warnings().getFirst()).startsWith("the cache budget of 10000 bytes cannot hold one"
                + " sequence's Mamba state (6400 bytes,");
    }

    @Test
    void theOperatorsChoicesPassThrough() {
        CacheSizing sizing = CacheSizing.plan(GIB, 32, DType.F16, 8, 4096, true, 7, HYBRID, states(HYBRID));
        assertThat(sizing.blockSize()).isEqualTo(32);
        assertThat(sizing.kvDtype()).isEqualTo(DType.F16);
        assertThat(sizing.prefixCaching()).isTrue();
        assertThat(sizing.snapshotIntervalBlocks()).isEqualTo(7);
    }

    /**
     * Over budgets from 256 MiB (two hybrid slots) to 16 GiB, on the three layouts, with and without
     * prefix caching: snapshots take a tenth exactly where the model has Mamba layers and prefix caching
     * is on; slots are as many as fit in half the rest, up to --max-seqs, and never fewer as the budget
     * grows; blocks are as many as fit in what the slots leave, up to a context window per slot; each
     * clamp comes with its warning; and the whole plan stays within the budget.
     */
    @Test
    void everyPlanFollowsTheRulesAndFitsItsBudget() {
        int maxSequences = 48;
        int context = 32_768;
        int blocksPerSequence = context / 16;
        for (List<BlockSpec> blocks : List.of(HYBRID, ATTENTION_ONLY, MAMBA_ONLY)) {
            for (boolean prefixCaching : new boolean[] {true, false}) {
                int previousSlots = 0;
                for (long budget = 256 * MIB; budget <= 16 * GIB; budget += budget / 7 + 12_345) {
                    CacheSizing sizing = plan(blocks, budget, maxSequences, context, prefixCaching);
                    String where = blocks.size() + " layers, prefix caching " + prefixCaching + ", budget " + budget;
                    boolean hasMamba = sizing.slotBytes() > 0;

                    long snapshots = hasMamba && prefixCaching ? budget / 10 : 0;
                    assertThat(sizing.snapshotBytes()).as(where).isBetween(snapshots - 1, snapshots);
                    long rest = budget - sizing.snapshotBytes();

                    assertThat(sizing.slots()).as(where).isBetween(Math.max(1, previousSlots), maxSequences);
                    previousSlots = sizing.slots();
                    long slotBytes = (long) sizing.slots() * sizing.slotBytes();
                    assertThat(slotBytes).as(where + ": slots keep to half the rest").isLessThanOrEqualTo(rest / 2);
                    boolean lowered = sizing.slots() < maxSequences;
                    if (lowered) {
                        assertThat(slotBytes + sizing.slotBytes()).as(where + ": one slot more would not fit")
                                .isGreaterThan(rest / 2);
                    }
                    assertThat(sizing.warnings().stream().anyMatch(w -> w.startsWith("--max-seqs lowered")))
                            .as(where).isEqualTo(lowered);

                    long kvBytes = rest - slotBytes;
                    long cap = (long) sizing.slots() * blocksPerSequence;
                    assertThat((long) sizing.blocks()).as(where).isLessThanOrEqualTo(cap);
                    if (sizing.blockBytes() > 0) {
                        assertThat((long) sizing.blocks() * sizing.blockBytes()).as(where).isLessThanOrEqualTo(kvBytes);
                        if (sizing.blocks() < cap) {
                            assertThat((long) (sizing.blocks() + 1) * sizing.blockBytes())
                                    .as(where + ": one block more would not fit").isGreaterThan(kvBytes);
                        }
                    } else {
                        assertThat((long) sizing.blocks()).as(where).isEqualTo(cap);
                    }
                    assertThat(sizing.warnings().stream().anyMatch(w -> w.startsWith("the KV cache holds")))
                            .as(where).isEqualTo(sizing.blocks() < blocksPerSequence);
                    assertThat(sizing.snapshotBytes() + slotBytes + (long) sizing.blocks() * sizing.blockBytes())
                            .as(where + ": the plan fits the budget").isLessThanOrEqualTo(budget);
                }
            }
        }
    }
}
