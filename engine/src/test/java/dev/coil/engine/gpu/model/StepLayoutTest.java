package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.model.Batch;
import dev.coil.engine.model.SequenceState;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A serving step's layout on the CPU: decodes first, then prompt chunks from the shortest (ties in
 * the batch's order), and the packed prompt arrays the packed prefill kernels read.
 */
class StepLayoutTest {

    private static final int BLOCK_SIZE = 4;

    private static Batch.Segment segment(int slot, int past, int tokens, int clamped) {
        SequenceState sequence = SequenceState.inSlot(1, slot);
        for (int b = 0; b < Math.ceilDiv(past + tokens, BLOCK_SIZE); b++) {
            sequence.appendBlock(10 * slot + b);
        }
        sequence.advance(past);
        int[] ids = new int[tokens];
        Arrays.fill(ids, 7 + slot);
        return new Batch.Segment(sequence, ids, clamped, Batch.Logits.LAST);
    }

    @Test
    void promptChunksFollowTheDecodesShortestFirstWithTheirPackedArrays() {
        Batch batch = new Batch(List.of(
                segment(3, 0, 9, 9),   // prompt
                segment(1, 5, 1, 0),   // decode
                segment(4, 2, 3, 2),   // prompt chunk after two tokens, one generated token recomputed
                segment(0, 0, 9, 9),   // prompt, as long as the first
                segment(2, 8, 1, 0))); // decode
        StepLayout layout = StepLayout.of(batch, BLOCK_SIZE, 99, 98, 0, 0);

        assertThat(layout.order).containsExactly(1, 4, 2, 0, 3);
        assertThat(layout.decodes).isEqualTo(2);
        assertThat(layout.prompts()).isEqualTo(3);
        assertThat(layout.promptRows()).isEqualTo(21);
        assertThat(layout.firstRow).containsExactly(0, 1, 2, 5, 14);

        int offset = layout.packed.length - (5 * 3 + 2 + 21);
        int[] prompts = Arrays.copyOfRange(layout.packed, offset, layout.packed.length);
        assertThat(Arrays.copyOfRange(prompts, 0, 4)).as("starts").containsExactly(0, 3, 12, 21);
        assertThat(Arrays.copyOfRange(prompts, 4, 7)).as("slots").containsExactly(4, 3, 0);
        assertThat(Arrays.copyOfRange(prompts, 7, 10)).as("clamped").containsExactly(2, 9, 9);
        int[] rowChunk = new int[21];
        Arrays.fill(rowChunk, 3, 12, 1);
        Arrays.fill(rowChunk, 12, 21, 2);
        assertThat(Arrays.copyOfRange(prompts, 10, 31)).as("each prompt row's chunk").containsExactly(rowChunk);
        // Keys: 2 + 3, then 9, then 9.
        assertThat(Arrays.copyOfRange(prompts, 31, 35)).as("key starts").containsExactly(0, 5, 14, 23);
        int[] tableStarts = Arrays.copyOfRange(prompts, 35, 38);
        int[][] tables = {{40, 41}, {30, 31, 32}, {0, 1, 2}};
        for (int p = 0; p < 3; p++) {
            assertThat(Arrays.copyOfRange(layout.packed, tableStarts[p], tableStarts[p] + tables[p].length))
                    .as("prompt chunk %d's block table", p).containsExactly(tables[p]);
        }
    }

    @Test
    void aDecodeStepPacksNoPromptArrays() {
        Batch batch = new Batch(List.of(segment(1, 5, 1, 0), segment(2, 8, 1, 0)));
        StepLayout layout = StepLayout.of(batch, BLOCK_SIZE, 99, 98, 4, 3);
        assertThat(layout.prompts()).isZero();
        assertThat(layout.packed).hasSize(3 * 4 + 2 * 4 + 4 * 3);
    }
}
