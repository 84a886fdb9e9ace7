package dev.coil.engine.bench;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.bench.ServingBenchmark.ChatRow;
import java.util.List;
import org.junit.jupiter.api.Test;

class ServingBenchmarkTest {

    private static ChatRow replies(boolean caching, Integer... tokens) {
        return new ChatRow(caching, 1, 10, 0, 1, 1, List.of(tokens), List.of());
    }

    @Test
    void repliesPartAtTheirFirstDifferentToken() {
        assertThat(ServingBenchmark.firstDifference(replies(true, 1, 2, 3), replies(false, 1, 2, 3))).isEqualTo(-1);
        assertThat(ServingBenchmark.firstDifference(replies(true, 1, 2, 3), replies(false, 1, 5, 3))).isEqualTo(1);
        assertThat(ServingBenchmark.firstDifference(replies(true, 4, 2), replies(false, 1, 2))).isZero();
    }

    @Test
    void aReplyThatStopsEarlierPartsWhereItStops() {
        assertThat(ServingBenchmark.firstDifference(replies(true, 1, 2), replies(false, 1, 2, 3))).isEqualTo(2);
        assertThat(ServingBenchmark.firstDifference(replies(true, 1, 2, 3), replies(false, 1, 2))).isEqualTo(2);
    }
}
