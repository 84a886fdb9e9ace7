package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.ops.SsmShape;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Which state-update kernel a step takes, on the CPU: one row of state a warp for a few sequences, four for many. */
class SsmStateUpdateRowsTest {

    private static final SsmShape GRANITE_300M = new SsmShape(24, 64, 1, 128);

    @AfterEach
    void clearProperty() {
        System.clearProperty(SsmStateUpdateKernel.ROWS_PROPERTY);
    }

    @Test
    void aFewSequencesTakeOneRowAWarpAndManyTakeFour() {
        assertThat(SsmStateUpdateKernel.rowsPerWarp(1, GRANITE_300M)).isEqualTo(1);
        assertThat(SsmStateUpdateKernel.rowsPerWarp(7, GRANITE_300M)).isEqualTo(1);
        assertThat(SsmStateUpdateKernel.rowsPerWarp(8, GRANITE_300M)).isEqualTo(4);
        assertThat(SsmStateUpdateKernel.rowsPerWarp(64, GRANITE_300M)).isEqualTo(4);
        // The rule counts state rows: a shape of 64 heads reaches them with fewer sequences.
        assertThat(SsmStateUpdateKernel.rowsPerWarp(3, new SsmShape(64, 64, 1, 128))).isEqualTo(4);
    }

    @Test
    void thePropertyForcesAVariantAndRefusesOthers() {
        System.setProperty(SsmStateUpdateKernel.ROWS_PROPERTY, "4");
        assertThat(SsmStateUpdateKernel.rowsPerWarp(1, GRANITE_300M)).isEqualTo(4);
        System.setProperty(SsmStateUpdateKernel.ROWS_PROPERTY, "3");
        assertThatThrownBy(() -> SsmStateUpdateKernel.rowsPerWarp(1, GRANITE_300M))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("1 or 4");
    }
}
