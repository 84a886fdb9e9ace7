package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Which gemv kernel a launch of a few rows takes (no GPU needed). */
class GemvBucketTest {

    private static String kernel(int rows, boolean tall, boolean mma) {
        return GemvKernel.BUCKETS[GemvKernel.bucket(rows, tall, mma)];
    }

    @Test
    void rowsAndShapesPickTheirKernels() {
        assertThat(kernel(1, false, false)).isEqualTo("rows1");
        assertThat(kernel(1, true, false)).isEqualTo("rows1_wide");
        assertThat(kernel(2, false, false)).isEqualTo("rows2_narrow");
        assertThat(kernel(2, true, false)).isEqualTo("rows2");
        assertThat(kernel(3, false, false)).isEqualTo("rows4_narrow");
        assertThat(kernel(4, true, false)).isEqualTo("rows4");
        assertThat(kernel(5, false, false)).isEqualTo("rows8");
        assertThat(kernel(8, true, false)).isEqualTo("rows8");
        assertThat(kernel(3, false, true)).isEqualTo("mma4");
        assertThat(kernel(4, true, true)).isEqualTo("mma4");
        assertThat(kernel(5, true, true)).isEqualTo("mma8");
        assertThat(kernel(8, false, true)).isEqualTo("mma8");
        assertThat(kernel(9, true, true)).isEqualTo("mma16");
        assertThat(kernel(16, false, true)).isEqualTo("mma16");
    }
}
