package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaException;
import dev.coil.engine.model.Granite300mCheckpoint;
import dev.coil.engine.parallel.ShardLayout;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.ScanPrecision;
import java.io.IOException;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Prints the prefill time of long prompts (64k and 128k tokens by default; RING_TOKENS=a,b or -Dcoil.ring.tokens)
 * on the 300M-shaped random GraniteMoeHybrid (bf16) on one GPU and sharded over two (or the ring sizes
 * in RING_GPUS=2,4 or -Dcoil.ring.gpus; zigzag and contiguous), every SSD scan in f32 or, with
 * RING_SSD_PRECISION=tf32 or -Dcoil.ring.ssdPrecision=tf32, in tf32 ({@code --ssd-precision}), the speedup and its share of the
 * ideal, the device memory in use on each GPU after the prefill, and for zigzag per ring step the
 * attention compute and K/V transfer times summed over the attention blocks, with each GPU's time
 * by kind of block (each timed run follows an untimed one of the same size, which grows the scratch
 * buffers): a step's transfer runs under the previous step's compute. Nothing is asserted on time;
 * the last-position logits of a ring must agree with one GPU's. A size a ring cannot hold is
 * reported and skipped.
 */
@Tag("multi-gpu")
class RingPrefillTimingTest {

    @Test
    void printsPrefillTimesOnOneGpuAndOnRings() throws IOException {
        assertThat(CudaDevice.count()).as("GPUs this benchmark needs").isGreaterThanOrEqualTo(2);
        String sizes = System.getProperty("coil.ring.tokens",
                System.getenv().getOrDefault("RING_TOKENS", "65536,131072"));
        ScanPrecision scan = ScanPrecision.parse(System.getProperty("coil.ring.ssdPrecision",
                System.getenv().getOrDefault("RING_SSD_PRECISION", "f32")));
        System.out.printf("[gpu-ring] SSD scan in %s%n", scan);
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel loaded = LoadedModel.load(checkpoint.folder())) {
            int vocab = loaded.config().vocabSize();
            int[] warm = new SplittableRandom(1).ints(8192, 0, vocab).toArray();
            String[] sizeList = sizes.split(",");
            // One GPU first, alone in the process, then two: each one's memory figure is its own.
            double[] oneMs = new double[sizeList.length];
            float[][] single = new float[sizeList.length][];
            String[] oneMemory = new String[sizeList.length];
            java.util.Arrays.fill(oneMs, Double.NaN);
            java.util.Arrays.fill(oneMemory, "-");
            try (GpuShardedModel one = GpuShardedModel.open(loaded, Devices.parse("cuda:0"), scan.kernelPrecision())) {
                System.out.printf("[gpu-ring] one GPU is estimated to hold %d positions of one sequence%n",
                        one.positionsPerDevice());
                one.prefillLastLogits(warm, ShardLayout.CONTIGUOUS, null);
                for (int i = 0; i < sizeList.length; i++) {
                    int[] ids = prompt(sizeList[i], vocab);
                    try {
                        one.prefillLastLogits(ids, ShardLayout.CONTIGUOUS, null); // grows the scratch to this size
                    } catch (CudaException | IllegalStateException e) {
                        // Past what one GPU holds: the larger sizes are for two GPUs alone. Anything else
                        // (an illegal address, a launch failure) is a failure, not a size.
                        requireOutOfMemory(e);
                        System.out.printf("[gpu-ring] one GPU cannot prefill %d tokens: %s%n", ids.length,
                                e.getMessage());
                        oneMs[i] = Double.NaN;
                        oneMemory[i] = "-";
                        break;
                    }
                    long start = System.nanoTime();
                    single[i] = one.prefillLastLogits(ids, ShardLayout.CONTIGUOUS, null);
                    oneMs[i] = (System.nanoTime() - start) / 1e6;
                    oneMemory[i] = memory(one);
                    RingTimings timings = new RingTimings(1);
                    one.prefillLastLogits(ids, ShardLayout.CONTIGUOUS, timings);
                    printSpans(ids.length, "one GPU", timings);
                }
            }
            for (String ringSize : System.getProperty("coil.ring.gpus",
                    System.getenv().getOrDefault("RING_GPUS", "2")).split(",")) {
                int gpus = Integer.parseInt(ringSize.trim());
                assertThat(CudaDevice.count()).as("GPUs this ring needs").isGreaterThanOrEqualTo(gpus);
                try (GpuShardedModel ring = GpuShardedModel.open(loaded,
                        Devices.parse(TwoGpuShardedModelTest.devices(gpus)), scan.kernelPrecision())) {
                    ring.prefillLastLogits(warm, ShardLayout.ZIGZAG, null);
                    ring.prefillLastLogits(warm, ShardLayout.CONTIGUOUS, null);
                    int timed = 0;
                    for (int i = 0; i < sizeList.length; i++) {
                        if (!timeRing(ring, gpus, prompt(sizeList[i], vocab), oneMs[i], oneMemory[i], single[i])) {
                            break;
                        }
                        timed++;
                    }
                    // A failure at the first size is not "too long for the ring": it is a failure.
                    assertThat(timed).as("sizes %d GPUs prefilled", gpus).isPositive();
                }
            }
        }
    }

    /**
     * Both layouts on the ring, then a zigzag run with timing events; false (after saying so) where
     * the ring cannot hold the prompt.
     */
    private static boolean timeRing(GpuShardedModel ring, int gpus, int[] ids, double oneMs, String oneMemory,
            float[] single) {
        int tokens = ids.length;
        for (ShardLayout layout : ShardLayout.values()) {
            try {
                ring.prefillLastLogits(ids, layout, null); // grows the scratch to this size
            } catch (CudaException | IllegalStateException e) {
                requireOutOfMemory(e);
                System.out.printf("[gpu-ring] %d GPUs cannot prefill %d tokens: %s%n", gpus, tokens, e.getMessage());
                return false;
            }
            long start = System.nanoTime();
            float[] sharded = ring.prefillLastLogits(ids, layout, null);
            double ringMs = (System.nanoTime() - start) / 1e6;
            System.out.printf("[gpu-ring] %s, granite300m bf16, prefill of %d tokens: one GPU %.0f ms (%.0f tokens/s), "
                    + "%d GPUs %s %.0f ms (%.0f tokens/s): %.2fx (%.0f%% of ideal); device memory in use after: one GPU "
                    + "%s, %d GPUs %s; last logits max |Δ| %.2e%n", deviceName(ring), tokens, oneMs,
                    tokens / oneMs * 1e3, gpus, layout, ringMs, tokens / ringMs * 1e3, oneMs / ringMs,
                    100 * oneMs / ringMs / gpus, oneMemory, gpus, memory(ring),
                    single == null ? Double.NaN : maxDifference(sharded, single));
            if (single != null) {
                assertThat(maxDifference(sharded, single) / scale(single)).as("last logits, %d GPUs vs one", gpus)
                        .isLessThan(2e-2);
            }
        }
        RingTimings timings = new RingTimings(gpus);
        long start = System.nanoTime();
        ring.prefillLastLogits(ids, ShardLayout.ZIGZAG, timings);
        double timedMs = (System.nanoTime() - start) / 1e6;
        for (int device = 0; device < gpus; device++) {
            StringBuilder steps = new StringBuilder();
            for (int step = 0; step < gpus; step++) {
                steps.append(String.format("%s step %d %.1f ms", step == 0 ? "" : ";", step,
                        timings.computeMillis(device, step)));
                if (step > 0) {
                    steps.append(String.format(" (its K/V transfer %.1f ms)", timings.copyMillis(device, step)));
                }
            }
            System.out.printf("[gpu-ring] %d tokens, zigzag over %d GPUs, GPU %d (whole prefill %.0f ms with timing "
                    + "events), attention summed over the attention blocks:%s%n", tokens, gpus, device, timedMs, steps);
        }
        printSpans(tokens, gpus + " GPUs, zigzag", timings);
        return true;
    }

    /**
     * Each span's compute-stream milliseconds summed over the blocks, per GPU (with what the stream
     * waited there for another GPU): one GPU's against two GPUs' show where the ring loses time.
     */
    private static void printSpans(int tokens, String what, RingTimings timings) {
        StringBuilder line = new StringBuilder(String.format("[gpu-ring] %d tokens, %s, ms a GPU:", tokens, what));
        for (String name : timings.spanNames()) {
            line.append(String.format(" %s", name));
            for (int device = 0; device < timings.devices(); device++) {
                line.append(String.format("%s%.1f", device == 0 ? " " : " / ", timings.spanMillis(name, device)));
            }
            line.append(';');
        }
        line.append(" host ms:");
        for (String name : timings.hostNames()) {
            line.append(String.format(" %s %.1f;", name, timings.hostMillis(name)));
        }
        System.out.println(line);
    }

    private static int[] prompt(String size, int vocab) {
        int tokens = Integer.parseInt(size.trim());
        return new SplittableRandom(tokens).ints(tokens, 0, vocab).toArray();
    }

    private static String deviceName(GpuShardedModel model) {
        return model.devices()[0].device.name();
    }

    private static String memory(GpuShardedModel model) {
        StringBuilder text = new StringBuilder();
        for (RingDevice device : model.devices()) {
            device.use();
            long used = device.device.totalMemory() - device.device.freeMemory();
            text.append(text.isEmpty() ? "" : " + ").append(String.format("%.1f GiB", used / (double) (1L << 30)));
        }
        return text.toString();
    }

    private static double maxDifference(float[] a, float[] b) {
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs(a[i] - b[i]));
        }
        return worst;
    }

    private static double scale(float[] values) {
        double max = 1e-3;
        for (float value : values) {
            max = Math.max(max, Math.abs(value));
        }
        return max;
    }

    /**
     * Rethrows {@code failure} unless it says the prompt does not fit: CUDA's or cuBLAS's out of memory
     * (by its code or the error's name in its message), or the model's refusal of more positions than its devices hold (an IllegalStateException).
     */
    private static void requireOutOfMemory(RuntimeException failure) {
        if (failure instanceof CudaException cuda && cuda.result() != jcuda.driver.CUresult.CUDA_ERROR_OUT_OF_MEMORY
                && !String.valueOf(cuda.getMessage()).contains("OUT_OF_MEMORY")
                && !String.valueOf(cuda.getMessage()).contains("ALLOC_FAILED")) {
            throw failure;
        }
    }
}
