package dev.coil.engine.parallel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ShardingTest {

    @ParameterizedTest
    @CsvSource({"ZIGZAG, 1, 1", "ZIGZAG, 2, 53", "ZIGZAG, 3, 40", "ZIGZAG, 4, 3", "CONTIGUOUS, 3, 53",
        "CONTIGUOUS, 4, 2", "ZIGZAG, 4, 64"})
    void everyPositionBelongsToExactlyOneDeviceInAscendingRows(ShardLayout layout, int devices, int tokens) {
        Sharding sharding = new Sharding(layout, devices, tokens);
        int[] seen = new int[tokens];
        for (int device = 0; device < devices; device++) {
            int[] positions = sharding.positions(device);
            assertThat(positions).isSorted();
            for (int row = 0; row < positions.length; row++) {
                seen[positions[row]]++;
                assertThat(sharding.locate(positions[row])).containsExactly(device, row);
            }
        }
        assertThat(seen).containsOnly(1);
        int lengthSpread = 0;
        for (int k = 0; k < sharding.chunkCount(); k++) {
            lengthSpread = Math.max(lengthSpread, Math.abs(sharding.chunkLength(k) - tokens / sharding.chunkCount()));
        }
        assertThat(lengthSpread).isLessThanOrEqualTo(1);
    }

    @Test
    void zigzagPairsAnEarlyChunkWithALateOne() {
        Sharding sharding = new Sharding(ShardLayout.ZIGZAG, 3, 60);
        assertThat(sharding.chunkCount()).isEqualTo(6);
        assertThat(sharding.chunksOf(0)).containsExactly(0, 5);
        assertThat(sharding.chunksOf(1)).containsExactly(1, 4);
        assertThat(sharding.chunksOf(2)).containsExactly(2, 3);
        assertThat(sharding.positions(1)).startsWith(10, 11).endsWith(48, 49);
        assertThat(sharding.firstRow(0, 5)).isEqualTo(10);
        Sharding contiguous = new Sharding(ShardLayout.CONTIGUOUS, 3, 60);
        assertThat(contiguous.positions(2)).isEqualTo(java.util.stream.IntStream.range(40, 60).toArray());
        assertThat(Arrays.stream(new int[] {0, 1, 2}).map(contiguous::rows).toArray()).containsOnly(20);
    }

    @Test
    void badArgumentsAreNamed() {
        assertThatThrownBy(() -> new Sharding(ShardLayout.ZIGZAG, 0, 5)).hasMessageContaining("at least one device");
        assertThatThrownBy(() -> ShardLayout.parse("ring")).hasMessageContaining("zigzag or contiguous");
        assertThatThrownBy(() -> ContextParallelMode.parse("sometimes")).hasMessageContaining("auto, always or never");
    }
}
