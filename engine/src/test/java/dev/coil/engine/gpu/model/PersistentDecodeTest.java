package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.bench.RandomCheckpoint;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.load.DType;
import dev.coil.engine.runner.LoadedModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The persistent decode kernel (one launch a step, {@link PersistentDecode}) against the same
 * steps launched kernel by kernel, on the same weights and inputs: a prompt, then 48 greedy decode
 * steps, the logits of every step compared. Long enough that the block table spans several cache
 * blocks and the attention splits its context several ways (from 17 positions on).
 *
 * <p>Models: the bf16 transformers fixture (two Mamba groups, no positional encoding, head dim 8
 * padded to 64 in the cache), a small random checkpoint with RoPE, and a random one of the 300M
 * shape's widths (hidden 768, 24 Mamba heads of 64, state 128, MLP 2048, 12 query heads over 4 kv
 * heads): several weight pieces a block, conv channels and state rows split across blocks.
 *
 * <p>Both paths round each product's operand to bf16 and add in f32; they differ in the order of
 * the sums and in how the attention splits its context, so the logits agree to a few 1e-3 of the
 * row's scale, not bit for bit. The greedy token of the persistent step must be a top token of the
 * launch-by-launch step (equal, or within the tolerance of its best logit).
 */
@GpuTest
class PersistentDecodeTest {

    private static final double TOLERANCE = 1e-2;
    private static final int DECODE_STEPS = 48;

    static Stream<String> models() {
        return Stream.of("granitemoehybrid_bf16", "random-rope", "random-300m-widths");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void decodeStepsGiveTheLogitsOfTheStepsLaunchedKernelByKernel(String name) throws IOException {
        CudaDevice device = GpuFixture.device();
        CudaStream stream = GpuFixture.stream();
        try (LoadedModel loaded = LoadedModel.load(folder(name));
                GpuModel model = GpuModel.upload(device, stream, loaded)) {
            int vocab = loaded.config().vocabSize();
            SplittableRandom random = new SplittableRandom(7);
            int[] prompt = random.ints(21, 0, vocab).toArray();
            int capacity = prompt.length + DECODE_STEPS + 1;
            try (GpuSequence persistent = sequence(model, true, capacity);
                    GpuSequence launches = sequence(model, false, capacity)) {
                assertThat(persistent.step.persistent()).as("the persistent kernel takes " + name).isTrue();
                assertThat(launches.step.persistent()).isFalse();
                model.prefill(persistent, prompt);
                float[] expected = model.prefill(launches, prompt);
                int token = GpuModelTest.argmax(expected);
                for (int step = 0; step < DECODE_STEPS; step++) {
                    float[] actual = model.decode(persistent, token);
                    expected = model.decode(launches, token);
                    assertClose(actual, expected, name + " decode step " + step + " (context "
                            + launches.length() + ")");
                    token = GpuModelTest.argmax(expected);
                }
                assertThat(persistent.step.persistentSteps()).isEqualTo(DECODE_STEPS);
            }
        }
    }

    private static void assertClose(float[] actual, float[] expected, String what) {
        assertThat(actual).as(what + ": logits size").hasSize(expected.length);
        double scale = GpuModelTest.rowScale(expected);
        double relative = GpuModelTest.relativeError(actual, expected);
        if (what.endsWith("step 0 (context 22)") || what.contains("step 47 ")) {
            System.out.printf("[persistent] %s: max |persistent - launches| / row scale = %.2e%n", what, relative);
        }
        assertThat(relative).as(what + ": max |persistent - launches| relative to the row scale " + scale)
                .isLessThanOrEqualTo(TOLERANCE);
        int chosen = GpuModelTest.argmax(actual);
        int best = GpuModelTest.argmax(expected);
        assertThat((double) expected[chosen]).as(what + ": the persistent step's greedy token " + chosen
                + " against " + best).isGreaterThanOrEqualTo(expected[best] - TOLERANCE * scale);
    }

    /** A sequence whose step takes the persistent kernel or not. */
    private static GpuSequence sequence(GpuModel model, boolean persistent, int capacity) {
        String before = System.getProperty(PersistentDecode.PROPERTY);
        System.setProperty(PersistentDecode.PROPERTY, String.valueOf(persistent));
        try {
            return model.newSequence(capacity);
        } finally {
            if (before == null) {
                System.clearProperty(PersistentDecode.PROPERTY);
            } else {
                System.setProperty(PersistentDecode.PROPERTY, before);
            }
        }
    }

    private static Path folder(String name) throws IOException {
        RandomCheckpoint.Shape shape = switch (name) {
            case "random-rope" -> new RandomCheckpoint.Shape(256, 64, 4, 2, 4, 2, 4, 16, 16, 96);
            case "random-300m-widths" -> new RandomCheckpoint.Shape(4096, 768, 4, 2, 12, 4, 24, 64, 128, 2048);
            default -> null;
        };
        if (shape == null) {
            return GpuModelTest.withoutTokenizer(name);
        }
        Path folder = Files.createTempDirectory("coil-persistent-" + name);
        RandomCheckpoint.write(folder, shape, DType.BF16, 11);
        return folder;
    }
}
