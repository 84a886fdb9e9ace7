package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.PinnedBuffer;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.runner.Sampler;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.TokenHistory;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The device argmax picks what the CPU sampler picks greedily, ties included, and flags bad rows. */
@GpuTest
class ArgmaxKernelTest {

    @ParameterizedTest(name = "vocab {0}, rows {1}")
    @CsvSource({"1,3", "31,2", "1000,5", "49160,64", "100003,3"})
    void picksTheCpuSamplersGreedyToken(int vocab, int rows) {
        Random random = new Random(vocab * 7L + rows);
        float[] logits = Parity.uniform(random, vocab * rows, -4, 4);
        for (int r = 0; r < rows; r++) {
            if (r % 2 == 1 && vocab > 3) {
                // a tie between two ids: the lower one wins
                int low = random.nextInt(vocab / 2);
                int high = vocab / 2 + random.nextInt(vocab - vocab / 2);
                logits[r * vocab + low] = 9f;
                logits[r * vocab + high] = 9f;
            }
        }
        int[] expected = new int[rows];
        for (int r = 0; r < rows; r++) {
            float[] row = java.util.Arrays.copyOfRange(logits, r * vocab, (r + 1) * vocab);
            expected[r] = new Sampler(SamplingParams.greedy()).sample(row, new TokenHistory(new int[0]));
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer out = scope.poisoned(rows);
            new ArgmaxKernel(GpuFixture.kernels()).launch(scope.stream(), scope.upload(logits), rows, vocab, out);
            scope.stream().synchronize();
            int[] actual = new int[rows];
            out.copyTo(actual);
            assertThat(actual).containsExactly(expected);
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"NaN", "Infinity", "-Infinity"})
    void aRowTheCpuSamplerRefusesGivesMinusOne(float bad) {
        int vocab = 777;
        float[] logits = Parity.uniform(new Random(3), 2 * vocab, -1, 1);
        if (bad == Float.NEGATIVE_INFINITY) {
            java.util.Arrays.fill(logits, vocab, 2 * vocab, bad);
        } else {
            logits[vocab + 500] = bad;
        }
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer out = scope.poisoned(2);
            new ArgmaxKernel(GpuFixture.kernels()).launch(scope.stream(), scope.upload(logits), 2, vocab, out);
            scope.stream().synchronize();
            int[] actual = new int[2];
            out.copyTo(actual);
            assertThat(actual[0]).isBetween(0, vocab - 1);
            assertThat(actual[1]).isEqualTo(-1);
        }
    }

    @org.junit.jupiter.api.Test
    void theEntryCopiesTheStagedInputsAndFeedsTheChosenTokensToTheNextStepsIds() {
        // Step n's tokens (a refused row gives -1), and step n+1's staged inputs: 6 ids after 3 other
        // ints, then the feed pairs. Rows 0, 2, 3 and 5 take tokens of rows 4, 0, 1 and 3; rows 1 and
        // 4 keep the ids the host wrote.
        int[] tokens = {17, 5, 900, -1, 42};
        int[] staged = {-5, 6, 70000, 7, 8, 9, 10, 11, 12, 0, 4, 2, 0, 3, 1, 5, 3, 99};
        int[] expected = {-5, 6, 70000, 42, 8, 17, 5, 11, 0, 0, 4, 2, 0, 3, 1, 5, 3, 99};
        try (DeviceScope scope = GpuFixture.scope();
                PinnedBuffer staging = GpuFixture.device().allocatePinned(4L * staged.length)) {
            java.lang.foreign.MemorySegment.copy(staged, 0, staging.segment(), java.lang.foreign.ValueLayout.JAVA_INT,
                    0, staged.length);
            DeviceBuffer inputs = scope.poisoned(staged.length);
            ArgmaxKernel kernel = new ArgmaxKernel(GpuFixture.kernels());
            kernel.enter(scope.stream(), staging, staged.length, inputs, scope.upload(tokens), 9, 4, 3);
            scope.stream().synchronize();
            int[] actual = new int[staged.length];
            inputs.copyTo(actual);
            assertThat(actual).containsExactly(expected);

            // No feed: the staged ints as they are.
            DeviceBuffer plain = scope.poisoned(staged.length);
            kernel.enter(scope.stream(), staging, staged.length, plain, null, 0, 0, 0);
            scope.stream().synchronize();
            plain.copyTo(actual);
            assertThat(actual).containsExactly(staged);
        }
    }
}
