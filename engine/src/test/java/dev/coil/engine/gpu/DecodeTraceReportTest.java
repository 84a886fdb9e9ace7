package dev.coil.engine.gpu;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The trace report on the CPU: steps told apart by the host's pause, medians per kernel, other steps left out. */
class DecodeTraceReportTest {

    @Test
    void reportsEachKernelsMedianGapOverTheStepsOfTheCommonLength() {
        List<DecodeTrace.Wait> waits = new ArrayList<>();
        long now = 0;
        // Three steps of three kernels, gaps (1, 2), (1, 4), (3, 2) µs; a prefill of two kernels between them.
        long[][] gaps = {{1_000, 2_000}, {1_000, 4_000}, {3_000, 2_000}};
        for (int s = 0; s < gaps.length; s++) {
            waits.add(new DecodeTrace.Wait(now, 210, 1, 1, 256));
            now += gaps[s][0];
            waits.add(new DecodeTrace.Wait(now, 16, 24, 1, 128));
            now += gaps[s][1];
            waits.add(new DecodeTrace.Wait(now, 96, 1, 1, 256));
            now += 500_000;
            if (s == 0) {
                waits.add(new DecodeTrace.Wait(now, 7, 1, 1, 256));
                waits.add(new DecodeTrace.Wait(now + 9_000, 7, 1, 1, 256));
                now += 500_000;
            }
        }
        String report = DecodeTrace.medianReport(waits);
        assertThat(report).contains("  0 (210)×256          1.00 µs", "  1 (16,24)×128        2.00 µs",
                "3 steps of 3 waiting kernels (of 4 steps recorded), 3.0 µs");
        assertThat(report).doesNotContain("(7)×256", "  2 (96)");
    }

    @Test
    void marksAreNamedAndTimedLikeWaits() {
        List<DecodeTrace.Wait> waits = new ArrayList<>();
        long now = 0;
        // Two steps: the embedding's start, one kernel's wait 2 µs later, the argmax's end 5 µs after that.
        for (int s = 0; s < 2; s++) {
            waits.add(new DecodeTrace.Wait(now, 0, 0, 0, 2));
            waits.add(new DecodeTrace.Wait(now + 2_000, 210, 1, 1, 256));
            waits.add(new DecodeTrace.Wait(now + 7_000, 0, 0, 0, 3));
            now += 500_000;
        }
        assertThat(waits.get(0).mark()).isTrue();
        assertThat(waits.get(1).mark()).isFalse();
        assertThat(new DecodeTrace.Wait(0, 0, 0, 0, 9).shape()).isEqualTo("[mark 9]");
        assertThat(DecodeTrace.medianReport(waits)).contains("  0 [embedding starts]   2.00 µs",
                "  1 (210)×256          5.00 µs", "2 steps of 3 waiting kernels (of 2 steps recorded), 7.0 µs");
    }

    @Test
    void loneWaitsBetweenStepsAreNotTakenForSteps() {
        List<DecodeTrace.Wait> waits = new ArrayList<>();
        long now = 0;
        // Two steps of two kernels (gap 3 µs), each followed by three lone waits far apart.
        for (int s = 0; s < 2; s++) {
            waits.add(new DecodeTrace.Wait(now, 210, 1, 1, 256));
            waits.add(new DecodeTrace.Wait(now + 3_000, 96, 1, 1, 256));
            now += 500_000;
            for (int lone = 0; lone < 3; lone++) {
                waits.add(new DecodeTrace.Wait(now, 7, 1, 1, 256));
                now += 500_000;
            }
        }
        assertThat(DecodeTrace.medianReport(waits)).contains("  0 (210)×256          3.00 µs",
                "2 steps of 2 waiting kernels (of 8 steps recorded), 3.0 µs");
    }

    @Test
    void stepsRunBackToBackAreCutByThePeriodOfTheirKernels() {
        List<DecodeTrace.Wait> waits = new ArrayList<>();
        long now = 0;
        // Steps of four kernels A B A C (A repeats within a step), 1, 2, 3 and 4 µs apart, run back to
        // back: six steps, a prefill's lone waits, then three more steps begun one kernel late.
        int[][] shapes = {{210, 256}, {16, 128}, {210, 256}, {96, 256}};
        for (int s = 0; s < 9; s++) {
            for (int k = 0; k < 4; k++) {
                if (s == 6 && k == 0) {
                    for (int lone = 0; lone < 3; lone++) {
                        now += 500_000;
                        waits.add(new DecodeTrace.Wait(now, 7, 1, 1, 256));
                    }
                    now += 500_000;
                    continue;
                }
                waits.add(new DecodeTrace.Wait(now, shapes[k][0], 1, 1, shapes[k][1]));
                now += (k + 1) * 1_000L;
            }
        }
        assertThat(DecodeTrace.medianReport(waits)).contains("  0 (210)×256          1.00 µs",
                "  1 (16)×128           2.00 µs", "  2 (210)×256          3.00 µs",
                "8 steps of 4 waiting kernels", "6.0 µs from the first wait to the last");
    }

    @Test
    void noRecordsGiveNoReport() {
        assertThat(DecodeTrace.medianReport(List.of())).isNull();
    }
}
