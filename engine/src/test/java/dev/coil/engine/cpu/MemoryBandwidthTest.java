package dev.coil.engine.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class MemoryBandwidthTest {

    @Test
    void measuresAFinitePositiveReadRate() {
        double gigabytesPerSecond = MemoryBandwidth.measureReadGBps(16L << 20, 1);

        assertThat(gigabytesPerSecond).isFinite().isPositive();
    }
}
