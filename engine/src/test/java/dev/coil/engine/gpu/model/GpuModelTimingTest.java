package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.model.Granite300mCheckpoint;
import dev.coil.engine.runner.LoadedModel;
import java.io.IOException;
import org.junit.jupiter.api.Test;

/**
 * Prints batch-1 decode milliseconds per token of the 300M random shape (bf16), beside the floor of
 * reading every decode weight once at 3.0 TB/s. Each step is a chain of separate launches and two
 * blocking copies (ids in, logits out), so the figure is launch-bound; nothing is asserted on time.
 */
@GpuTest
class GpuModelTimingTest {

    private static final double BANDWIDTH = 3.0e12;

    @Test
    void printsDecodeMillisecondsPerTokenOfThe300mShape() throws IOException {
        CudaDevice device = GpuFixture.device();
        int prompt = 128;
        int warmup = 8;
        int steps = 64;
        try (Granite300mCheckpoint checkpoint = Granite300mCheckpoint.write();
                LoadedModel loaded = LoadedModel.load(checkpoint.folder());
                GpuModel model = GpuModel.upload(device, GpuFixture.stream(), loaded);
                GpuSequence sequence = model.newSequence(prompt + warmup + steps + 1)) {
            int[] tokens = new int[prompt];
            for (int i = 0; i < prompt; i++) {
                tokens[i] = (i * 7919) % loaded.config().vocabSize();
            }
            long prefillStart = System.nanoTime();
            float[] logits = model.prefill(sequence, tokens);
            double prefillMs = (System.nanoTime() - prefillStart) / 1e6;
            for (int i = 0; i < warmup; i++) {
                logits = model.decode(sequence, GpuModelTest.argmax(logits));
            }
            long start = System.nanoTime();
            for (int i = 0; i < steps; i++) {
                logits = model.decode(sequence, GpuModelTest.argmax(logits));
            }
            double perToken = (System.nanoTime() - start) / 1e6 / steps;
            long bytes = model.decodeWeightBytes();
            System.out.printf("[gpu-model] %s, granite300m bf16: prefill of %d tokens %.1f ms (first call); "
                    + "batch-1 decode %.3f ms/token over %d steps; weight-read floor %.3f ms (%.1f MB / 3.0 TB/s)%n",
                    device.description(), prompt, prefillMs, perToken, steps, bytes / BANDWIDTH * 1e3, bytes / 1e6);
            long nonFinite = 0;
            for (float value : logits) {
                nonFinite += Float.isFinite(value) ? 0 : 1;
            }
            assertThat(nonFinite).as("non-finite decode logits of the 300M shape").isZero();
        }
    }
}
