package dev.coil.engine.gpu;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemsetD32Async;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.CUdeviceptr;

/**
 * Diagnostics: when each kernel of a stretch of work returned from its wait on the kernel before
 * it (common.cuh's coil_trace: thread 0 of block 0 of every kernel that waits records
 * %globaltimer and its grid and block sizes, in the order the waits return). In a chain of
 * programmatic launches the time from one kernel's wait to the next one's is what that kernel
 * added to the chain: its work after the wait, its end, and the next one's wait. Marks (grid 0)
 * show the points no wait shows: the start of the entry before a step's graph and of its
 * embedding, and the end of its argmax, so that a step's trace covers it from end to end.
 */
public final class DecodeTrace {

    /** One kernel's record: when its wait returned (ns, the device's clock), its grid and block. */
    public record Wait(long nanos, int gridX, int gridY, int gridZ, int threads) {

        boolean sameShape(Wait other) {
            return gridX == other.gridX && gridY == other.gridY && gridZ == other.gridZ && threads == other.threads;
        }

        /** A point common.cuh's coil_trace_mark records (grid 0): not a wait, a place in the step. */
        public boolean mark() {
            return gridX == 0;
        }

        public String shape() {
            if (mark()) {
                return switch (threads) {
                    case 1 -> "[entry starts]";
                    case 2 -> "[embedding starts]";
                    case 3 -> "[argmax ends]";
                    case 4 -> "[lm_head ends]";
                    case 5 -> "[sampling starts]";
                    case 6 -> "[sampling ends]";
                    default -> "[mark " + threads + "]";
                };
            }
            return "(" + gridX + (gridY > 1 || gridZ > 1 ? "," + gridY : "") + (gridZ > 1 ? "," + gridZ : "") + ")×"
                    + threads;
        }
    }

    /** Bytes of one record on the device: the time and the packed grid and block. */
    private static final int RECORD_BYTES = 2 * Sizeof.LONG;

    private final CUdeviceptr on;
    private final CUdeviceptr next;
    private final CUdeviceptr records;
    /** Records the device holds (COIL_TRACE_CAPACITY in common.cuh, from the array's size). */
    private final int capacity;

    public DecodeTrace(KernelModule module) {
        this.on = module.global("coil_trace_on").address();
        this.next = module.global("coil_trace_next").address();
        KernelModule.Global array = module.global("coil_trace");
        this.records = array.address();
        this.capacity = (int) (array.bytes() / RECORD_BYTES);
    }

    /** Starts recording from the stream's next kernel on. */
    public void start(CudaStream stream) {
        Cuda.check(cuMemsetD32Async(next, 0, 1, stream.handle()), "cuMemsetD32Async(coil_trace_next)");
        Cuda.check(cuMemsetD32Async(on, 1, 1, stream.handle()), "cuMemsetD32Async(coil_trace_on)");
    }

    /** Stops recording after the stream's work so far. */
    public void stop(CudaStream stream) {
        Cuda.check(cuMemsetD32Async(on, 0, 1, stream.handle()), "cuMemsetD32Async(coil_trace_on)");
    }

    /** The records since {@link #start}, in order; the device must be done with the traced work. */
    public List<Wait> read() {
        int[] count = new int[1];
        Cuda.check(cuMemcpyDtoH(Pointer.to(count), next, Sizeof.INT), "cuMemcpyDtoH(coil_trace_next)");
        int n = Math.min(count[0], capacity);
        long[] raw = new long[2 * n];
        if (n > 0) {
            Cuda.check(cuMemcpyDtoH(Pointer.to(raw), records, (long) n * RECORD_BYTES), "cuMemcpyDtoH(coil_trace)");
        }
        List<Wait> waits = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            long shape = raw[2 * i + 1];
            waits.add(new Wait(raw[2 * i], (int) (shape >>> 40), (int) ((shape >>> 24) & 0xffff),
                    (int) ((shape >>> 12) & 0xfff), (int) (shape & 0xfff)));
        }
        return waits;
    }

    /** {@code -Dcoil.cuda.traceDump=FILE}: the traced waits also go to FILE, one "ns grid threads" line each. */
    public static final String DUMP_PROPERTY = "coil.cuda.traceDump";

    /** Writes the waits to {@code file} (nothing when it is null), for a look beyond the report. */
    public static void dump(List<Wait> waits, String file) {
        if (file == null) {
            return;
        }
        StringBuilder lines = new StringBuilder();
        for (Wait wait : waits) {
            lines.append(wait.nanos()).append(' ').append(wait.shape()).append('\n');
        }
        try {
            Files.writeString(Path.of(file), lines);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the trace to " + file, e);
        }
    }

    /** A pause longer than this between two waits ends a step (the host reads each step's tokens). */
    private static final long STEP_GAP_NANOS = 60_000;

    /**
     * Per kernel of a step, in order: its shape and the median µs from its wait to the next
     * kernel's (the last kernel of a step has none), over the recorded steps of the most common
     * length. Steps are told apart by the host's pause between them, and where steps ran back to
     * back (queued ahead of the host) by the period of the kernels' shapes; other steps (a
     * prompt's prefill between decodes) are left out.
     */
    public static String medianReport(List<Wait> waits) {
        List<List<Wait>> groups = new ArrayList<>();
        List<Wait> current = new ArrayList<>();
        for (Wait wait : waits) {
            if (!current.isEmpty() && wait.nanos() - current.getLast().nanos() > STEP_GAP_NANOS) {
                groups.add(current);
                current = new ArrayList<>();
            }
            current.add(wait);
        }
        if (!current.isEmpty()) {
            groups.add(current);
        }
        List<List<Wait>> steps = splitByPeriod(groups);
        // Lone waits (a prefill's launches between decode steps, each its own "step") are not steps.
        Map<Integer, Long> lengths = steps.stream().filter(step -> step.size() > 1).collect(
                Collectors.groupingBy(List::size, Collectors.counting()));
        int perStep = lengths.entrySet().stream().max(Map.Entry.comparingByValue()).map(
                Map.Entry::getKey).orElse(0);
        List<List<Wait>> alike = steps.stream().filter(step -> step.size() == perStep).toList();
        if (alike.isEmpty()) {
            return null;
        }
        StringBuilder report = new StringBuilder();
        double total = 0;
        for (int k = 0; k + 1 < perStep; k++) {
            double[] gaps = new double[alike.size()];
            for (int s = 0; s < alike.size(); s++) {
                gaps[s] = (alike.get(s).get(k + 1).nanos() - alike.get(s).get(k).nanos()) / 1e3;
            }
            Arrays.sort(gaps);
            double median = gaps[gaps.length / 2];
            total += median;
            report.append(String.format("%3d %-16s %6.2f µs%n", k, alike.getFirst().get(k).shape(), median));
        }
        report.append(String.format("%d steps of %d waiting kernels (of %d steps recorded), %.1f µs from the first"
                + " wait to the last%n", alike.size(), perStep, steps.size(), total));
        return report.toString();
    }

    /**
     * Groups of waits, each group cut into steps where it holds several run back to back. The
     * period is the smallest length P at which, within every group at least two periods long, all
     * but 1% of the waits have the shape of the wait P before. The first P waits of the first group
     * that long are a step (tracing starts at a step's first kernel); every group is cut at the
     * first place that sequence starts, then every P waits. Groups are kept as they are when none
     * repeats.
     */
    static List<List<Wait>> splitByPeriod(List<List<Wait>> groups) {
        int longest = groups.stream().mapToInt(List::size).max().orElse(0);
        int period = 0;
        for (int candidate = 2; candidate <= longest / 2 && period == 0; candidate++) {
            long compared = 0;
            long differ = 0;
            for (List<Wait> group : groups) {
                if (group.size() >= 2 * candidate) {
                    for (int i = 0; i + candidate < group.size(); i++) {
                        compared++;
                        differ += group.get(i).sameShape(group.get(i + candidate)) ? 0 : 1;
                    }
                }
            }
            if (compared > 0 && differ * 100 <= compared) {
                period = candidate;
            }
        }
        if (period == 0) {
            return groups;
        }
        int length = period;
        List<Wait> step = groups.stream().filter(group -> group.size() >= 2 * length).findFirst().orElseThrow()
                .subList(0, period);
        List<List<Wait>> steps = new ArrayList<>();
        for (List<Wait> group : groups) {
            int start = firstStart(group, step);
            if (start < 0) {
                steps.add(group);
                continue;
            }
            if (start > 0) {
                steps.add(group.subList(0, start));
            }
            for (int from = start; from < group.size(); from += period) {
                steps.add(group.subList(from, Math.min(group.size(), from + period)));
            }
        }
        return steps;
    }

    /** Where the shapes of {@code step} first follow one another in {@code group}, or −1. */
    private static int firstStart(List<Wait> group, List<Wait> step) {
        for (int start = 0; start + step.size() <= group.size(); start++) {
            boolean same = true;
            for (int i = 0; i < step.size() && same; i++) {
                same = group.get(start + i).sameShape(step.get(i));
            }
            if (same) {
                return start;
            }
        }
        return -1;
    }
}
