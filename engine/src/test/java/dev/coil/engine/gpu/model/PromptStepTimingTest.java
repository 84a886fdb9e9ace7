package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.StateStore;
import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.blas.Cublas;
import dev.coil.engine.load.DType;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.Granite300mCheckpoint;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.runner.Backend;
import dev.coil.engine.runner.LoadedModel;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Prints where a prompt step's time goes on the 300M shape (bf16): the host's time to queue it and
 * the device's time to run it, apart. Each step is queued behind a few tens of milliseconds of
 * large products, so the host queues all of it while the device is busy: the device's figure is
 * then its own work, not a wait for the host. cuBLAS's calls and their host time during the queueing
 * are counted. Steps of prompt lengths seen before and of new ones are timed, since cuBLAS picks a
 * kernel for every new product shape (after {@link GpuBackend#prepare}, as the engine runs it, unless
 * -Dcoil.bench.prepare=false). Nothing is asserted on time.
 */
@GpuTest
class PromptStepTimingTest {

    private static final int BLOCK_SIZE = 16;
    private static final int SLOTS = 16;
    private static final int MAX_TOKENS = 4096;

    @Test
    void printsHostAndDeviceMillisecondsOfPromptSteps() throws IOException {
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel loaded = LoadedModel.load(checkpoint.folder()); GpuBackend backend = GpuBackend.open(loaded, 0, true)) {
            int blocksPerSequence = MAX_TOKENS / BLOCK_SIZE;
            CacheSizing sizing = new CacheSizing(BLOCK_SIZE, DType.BF16, SLOTS * blocksPerSequence, SLOTS, false, 0, 0,
                    0, 0, List.of());
            StateStore store = backend.newStateStore(sizing);
            DeviceKernels kernels = backend.kernels();
            // As the engine does before its first request, unless -Dcoil.bench.prepare=false.
            if (!"false".equals(System.getProperty("coil.bench.prepare"))) {
                long start = System.nanoTime();
                backend.prepare(2048 + SLOTS);
                System.out.printf("[prompt-step] %s: cuBLAS's kernels picked for steps of up to %d rows in %.0f ms%n",
                        backend.description(), 2048 + SLOTS, (System.nanoTime() - start) / 1e6);
            }
            int side = 4096;
            try (DeviceBuffer a = kernels.device.allocate(2L * side * side);
                    DeviceBuffer b = kernels.device.allocate(2L * side * side);
                    DeviceBuffer c = kernels.device.allocate(4L * side * side)) {
                a.fill(0);
                b.fill(0);
                Random random = new Random(3);
                int vocab = loaded.config().vocabSize();
                // (prompts, tokens each): repeated shapes first, then new lengths each time; or
                // -Dcoil.bench.promptPlans=16x128,1x2048 (for a profiler, with -Dcoil.bench.busyProducts=0).
                int[][] plans = {{1, 128}, {1, 128}, {1, 128}, {16, 128}, {16, 128}, {16, 128}, {1, 2048}, {1, 2048},
                        {16, 127}, {16, 126}, {16, 125}, {1, 2047}, {1, 2046}, {1, 129}, {1, 130}};
                String chosen = System.getProperty("coil.bench.promptPlans");
                if (chosen != null) {
                    plans = Arrays.stream(chosen.split(",")).map(plan -> plan.split("x"))
                            .map(parts -> new int[] {Integer.parseInt(parts[0]), Integer.parseInt(parts[1])})
                            .toArray(int[][]::new);
                }
                int busyProducts = Integer.getInteger("coil.bench.busyProducts", 200);
                for (int[] plan : plans) {
                    int prompts = plan[0];
                    int tokens = plan[1];
                    List<Batch.Segment> segments = new ArrayList<>();
                    for (int s = 0; s < prompts; s++) {
                        SequenceState sequence = backend.newSequence(store, s);
                        int[] table = new int[Math.ceilDiv(tokens + 1, BLOCK_SIZE)];
                        for (int i = 0; i < table.length; i++) {
                            table[i] = s * blocksPerSequence + i;
                        }
                        sequence.setBlockTable(table);
                        int[] ids = new int[tokens];
                        for (int i = 0; i < tokens; i++) {
                            ids[i] = random.nextInt(vocab);
                        }
                        segments.add(new Batch.Segment(sequence, ids, tokens, Batch.Logits.LAST));
                    }
                    Batch batch = new Batch(segments);
                    // About 35 ms of products ahead of the step, so that its launches all queue before it runs.
                    for (int i = 0; i < busyProducts; i++) {
                        kernels.cublas().gemmEx(kernels.stream, true, false, side, side, side, a, side, b, side,
                                DType.BF16, c, side, false);
                    }
                    try (CudaEvent start = kernels.device.newEvent(); CudaEvent end = kernels.device.newEvent()) {
                        Cublas cublas = kernels.cublas();
                        long calls = cublas.calls();
                        long callNanos = cublas.callNanos();
                        start.record(kernels.stream);
                        long before = System.nanoTime();
                        Backend.Submitted submitted = backend.submit(batch);
                        long queued = System.nanoTime();
                        end.record(kernels.stream);
                        long stepCalls = cublas.calls() - calls;
                        double stepCallMicros = (cublas.callNanos() - callNanos) / 1e3;
                        List<Batch.Output> outputs = submitted.outputs();
                        double device = end.millisSince(start);
                        assertThat(outputs).hasSize(prompts);
                        System.out.printf("[prompt-step] %s: %d x %d tokens: host %.2f ms to queue (cuBLAS %d calls,"
                                + " %.0f µs of host time, %.1f µs each), device %.2f ms%n", backend.description(),
                                prompts, tokens, (queued - before) / 1e6, stepCalls, stepCallMicros,
                                stepCallMicros / Math.max(1, stepCalls), device);
                    }
                }
            }
        }
    }
}
