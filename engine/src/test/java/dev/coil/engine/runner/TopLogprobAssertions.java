package dev.coil.engine.runner;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;

/** Comparisons of top-logprob lists computed two ways (devices, batches, shards) within a tolerance. */
public final class TopLogprobAssertions {

    private TopLogprobAssertions() {}

    /**
     * The same length, each rank's logprob within {@code tolerance}, and each rank's token the same,
     * except where two tokens tie within the tolerance: then the token may sit at another rank of the
     * expected list with its logprob, or just past the expected list's end (it ties with its last).
     */
    public static void assertSameTop(List<TokenLogprob> actual, List<TokenLogprob> expected, double tolerance,
            String what) {
        assertThat(actual).as("%s: top list", what).hasSameSizeAs(expected);
        for (int rank = 0; rank < expected.size(); rank++) {
            TokenLogprob got = actual.get(rank);
            assertThat((double) got.logprob()).as("%s: top %d", what, rank)
                    .isCloseTo(expected.get(rank).logprob(), org.assertj.core.data.Offset.offset(tolerance));
            if (got.id() == expected.get(rank).id()) {
                continue;
            }
            boolean tiedInTheList = expected.stream()
                    .anyMatch(other -> other.id() == got.id() && Math.abs(other.logprob() - got.logprob()) <= tolerance);
            boolean tiedWithTheLast = Math.abs(expected.getLast().logprob() - got.logprob()) <= tolerance;
            assertThat(tiedInTheList || tiedWithTheLast)
                    .as("%s: top %d's token %d (logprob %s) against %d (%s): not a tie", what, rank, got.id(),
                            got.logprob(), expected.get(rank).id(), expected.get(rank).logprob())
                    .isTrue();
        }
    }
}
