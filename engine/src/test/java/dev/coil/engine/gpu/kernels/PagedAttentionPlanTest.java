package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.ops.AttentionShape;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** How the paged decode launch cuts contexts: host arithmetic only, so it runs without a GPU. */
class PagedAttentionPlanTest {

    private static final AttentionShape SHAPE = new AttentionShape(32, 8, 128);

    @ParameterizedTest(name = "batch {0}, max length {1}")
    @CsvSource({"1,1", "1,33", "1,4096", "1,131072", "64,4096", "256,1024", "3,1000000"})
    void planCoversTheContextWithBoundedPartitions(int batch, int maxLength) {
        PagedAttentionKernel.Split split = new PagedAttentionKernel(null, 132).plan(SHAPE, batch, maxLength);
        assertThat((long) split.partition() * split.splits()).isGreaterThanOrEqualTo(maxLength);
        assertThat((long) split.partition() * (split.splits() - 1)).isLessThan(maxLength);
        assertThat(split.partition()).isBetween(PagedAttentionKernel.MIN_PARTITION, PagedAttentionKernel.MAX_PARTITION);
        assertThat(split.workspaceFloats())
                .isEqualTo(split.splits() == 1 ? 0 : (long) batch * 32 * split.splits() * (128 + 2));
    }

    @Test
    void aLoneLongSequenceFillsTheGpu() {
        // 8 kv heads · splits blocks: at least a few per multiprocessor.
        PagedAttentionKernel.Split split = new PagedAttentionKernel(null, 132).plan(SHAPE, 1, 131072);
        assertThat(8L * split.splits()).isGreaterThanOrEqualTo(4 * 132);
        assertThat(new PagedAttentionKernel(null, 132).plan(SHAPE, 1, 4096).splits()).isGreaterThan(1);
    }

    @Test
    void largeBatchesNeedNoSplit() {
        assertThat(new PagedAttentionKernel(null, 132).plan(SHAPE, 512, 300).splits()).isEqualTo(1);
    }

    @Test
    void groupsCoverTheGqaRatio() {
        assertThat(PagedAttentionKernel.group(new AttentionShape(8, 8, 64))).isEqualTo(1);
        assertThat(PagedAttentionKernel.group(new AttentionShape(12, 4, 64))).isEqualTo(4);
        assertThat(PagedAttentionKernel.group(new AttentionShape(32, 8, 64))).isEqualTo(4);
        assertThat(PagedAttentionKernel.group(new AttentionShape(40, 8, 64))).isEqualTo(8);
        assertThat(PagedAttentionKernel.group(new AttentionShape(32, 2, 64))).isEqualTo(8);
        assertThat(PagedAttentionKernel.headGroups(new AttentionShape(32, 2, 64))).isEqualTo(2);
        assertThat(PagedAttentionKernel.headGroups(new AttentionShape(24, 2, 64))).isEqualTo(2);
    }

    @Test
    void tooLongAContextIsRefused() {
        assertThatThrownBy(() -> PagedAttentionKernel.split(SHAPE, 1, 8193 * 512, 512))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at most");
    }
}
