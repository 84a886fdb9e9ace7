package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Prints what the logprobs launches cost at the 300M model's vocabulary: a decode step's records of
 * 1 and 64 rows (5 top tokens, the row copied; the blocks a row as the kernel picks them, then every
 * other number allowed) and the chosen tokens, and a prompt's records of 1, 64 and 2048 rows (no copy)
 * and its tokens' logprobs and ranks. µs a launch, the median of 5 samples of 20 back-to-back launches
 * queued behind large fills ({@link QueuedLaunchTimer}). Nothing is asserted on time.
 */
@GpuTest
class LogprobsTimingsTest {

    private static final int VOCAB = 49160;

    @Test
    void printsTheLaunchesTimes() {
        CudaDevice device = GpuFixture.device();
        LogprobsKernel kernel = new LogprobsKernel(GpuFixture.kernels());
        Random random = new Random(3);
        for (int rows : new int[] {1, 64, 2048}) {
            float[] logits = new float[rows * VOCAB];
            for (int i = 0; i < logits.length; i++) {
                logits[i] = (float) (random.nextGaussian() * 2);
            }
            int[] rowIds = new int[rows];
            int[] tops = new int[rows];
            int[] tokens = new int[rows];
            for (int r = 0; r < rows; r++) {
                rowIds[r] = r;
                tops[r] = 5;
                tokens[r] = random.nextInt(VOCAB);
            }
            try (DeviceScope scope = GpuFixture.scope()) {
                DeviceBuffer logitBuffer = scope.upload(logits);
                DeviceBuffer rowBuffer = scope.upload(rowIds);
                DeviceBuffer topBuffer = scope.upload(tops);
                DeviceBuffer tokenBuffer = scope.upload(tokens);
                DeviceBuffer records = scope.poisoned((long) rows * LogprobsKernel.RECORD_WORDS);
                DeviceBuffer ranks = scope.poisoned(rows);
                DeviceBuffer raw = rows <= 64 ? scope.poisoned((long) rows * VOCAB) : null;
                QueuedLaunchTimer timer = new QueuedLaunchTimer(device, scope);
                if (raw != null) {
                    for (int blocks = 1; blocks <= LogprobsKernel.LARGEST_BLOCKS_PER_ROW; blocks *= 2) {
                        int given = blocks;
                        if (kernel.allowsBlocksPerRow(given)) {
                            String picked = given == kernel.blocksPerRow(rows) ? " (the kernel's pick)" : "";
                            print(timer, rows + " rows: top, the row copied, " + given + " blocks a row"
                                    + picked, () -> kernel.top(scope.stream(), logitBuffer, VOCAB, 1f, rows, rowBuffer,
                                            topBuffer, raw, records, given));
                        }
                    }
                    print(timer, rows + " rows: chosen", () -> kernel.chosen(scope.stream(), raw, VOCAB,
                            rows, rowBuffer, tokenBuffer, records));
                }
                print(timer, rows + " rows: top, no copy, divisor 8", () -> kernel.top(scope.stream(),
                        logitBuffer, VOCAB, 8f, rows, rowBuffer, topBuffer, null, records));
                print(timer, rows + " rows: the prompt tokens' logprobs and ranks, divisor 8",
                        () -> kernel.prompt(scope.stream(), logitBuffer, VOCAB, 8f, rows, rowBuffer, tokenBuffer,
                                records, ranks));
            }
        }
    }

    private static void print(QueuedLaunchTimer timer, String what, Runnable launch) {
        launch.run();
        System.out.printf("[timing] logprobs, vocabulary %d, %s: %.1f µs a launch%n", VOCAB, what,
                timer.millisPerLaunch(20, launch) * 1e3);
    }
}
