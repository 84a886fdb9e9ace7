package dev.coil.engine.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.List;
import org.junit.jupiter.api.Test;

class CpuBenchmarkTest {

    @Test
    void theFloorIsTheWeightsAtTheBandwidth() {
        assertThat(CpuBenchmark.floorMillis(533_000_000L, 53.3)).isCloseTo(10.0, within(1e-9));
        assertThat(CpuBenchmark.floorMillis(1_000_000_000L, 100)).isCloseTo(10.0, within(1e-9));
    }

    @Test
    void theMedianOfOddAndEvenCountsAndUnsortedValues() {
        assertThat(CpuBenchmark.median(List.of(3.0, 1.0, 2.0))).isEqualTo(2.0);
        assertThat(CpuBenchmark.median(List.of(4.0, 1.0, 3.0, 2.0))).isEqualTo(2.5);
        assertThat(CpuBenchmark.median(List.of(7.0))).isEqualTo(7.0);
    }
}
