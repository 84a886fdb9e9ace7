package dev.coil.engine.gpu.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.PinnedBuffer;
import dev.coil.engine.gpu.TestMatrices;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.runner.Sampler;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.TokenHistory;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The fused end of a one-row decode step (lm_head_argmax.cu) equals the two launches it replaces
 * bit for bit: the one-row product with the residual norm, then the argmax. Vocabularies of one
 * tile, of fewer tiles than blocks and of many tiles a block; a tie between two ids at the top;
 * launches one after another (the last block sets the count of finished blocks back); the token's
 * copy in pinned host memory; bad logits.
 */
@GpuTest
class LmHeadArgmaxKernelTest {

    @ParameterizedTest(name = "vocab {0}, hidden {1}, update {2}")
    @CsvSource({"1,768,true", "17,136,false", "5003,768,true", "49160,768,true", "49155,1024,false", "4096,2688,true",
        "131072,2688,true", "5003,2056,false"})
    void logitsAndTokenEqualTheProductThenTheArgmax(int vocab, int hidden, boolean withUpdate) {
        Random random = new Random(vocab * 13L + hidden);
        float[] normWeight = Parity.uniform(random, hidden, 0.5, 1.5);
        float[] weights = Parity.uniform(random, vocab * hidden, -1, 1);
        float[][] hs = {Parity.uniform(random, hidden, -3, 3), Parity.uniform(random, hidden, -3, 3)};
        float[] update = withUpdate ? Parity.uniform(random, hidden, -2, 2) : null;
        if (vocab > 3) {
            // Two equal rows that give the largest logit (each weight the sign of the first launch's
            // operand): the lower id must win.
            int low = 1 + random.nextInt(vocab / 2 - 1);
            int high = vocab / 2 + random.nextInt(vocab - vocab / 2);
            for (int i = 0; i < hidden; i++) {
                double v = hs[0][i] + (update == null ? 0 : update[i] * 0.22f);
                weights[low * hidden + i] = v >= 0 ? 1f : -1f;
                weights[high * hidden + i] = weights[low * hidden + i];
            }
        }
        Matrix lmHead = TestMatrices.of(weights, vocab, hidden, DType.BF16);
        try (DeviceScope scope = GpuFixture.scope(); PinnedBuffer hostToken = GpuFixture.device().allocatePinned(4)) {
            DeviceMatrix device = scope.keep(DeviceMatrix.upload(GpuFixture.device(), lmHead));
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
            ArgmaxKernel argmax = new ArgmaxKernel(GpuFixture.kernels());
            LmHeadArgmaxKernel fused = scope.keep(new LmHeadArgmaxKernel(GpuFixture.kernels(), GpuFixture.device()));
            DeviceBuffer weight = scope.upload(normWeight);
            DeviceBuffer updateDevice = update == null ? null : scope.upload(update);
            for (float[] h : hs) {
                GemvKernel.ResidualNorm norm = new GemvKernel.ResidualNorm(scope.upload(h), updateDevice, 0.22f, null,
                        weight, 1e-5f);
                DeviceBuffer separateLogits = scope.poisoned(vocab);
                DeviceBuffer separateToken = scope.poisoned(1);
                gemv.projectResidualNorm(scope.stream(), norm, 1, List.of(new GemvKernel.Product(device,
                        separateLogits)));
                argmax.launch(scope.stream(), separateLogits, 1, vocab, separateToken);
                DeviceBuffer fusedLogits = scope.poisoned(vocab);
                DeviceBuffer fusedToken = scope.poisoned(1);
                // The token also goes to pinned host memory whose address the device holds.
                hostToken.segment().set(ValueLayout.JAVA_INT, 0, -7);
                long address = hostToken.address();
                fused.launch(scope.stream(), norm, device, fusedLogits, fusedToken,
                        scope.upload(new int[] {(int) address, (int) (address >>> 32)}));
                scope.stream().synchronize();

                float[] logits = scope.download(separateLogits, vocab);
                Parity.assertExact("logits of the fused launch", scope.download(fusedLogits, vocab), logits);
                int[] expected = new int[1];
                int[] actual = new int[1];
                separateToken.copyTo(expected);
                fusedToken.copyTo(actual);
                assertThat(actual[0]).isEqualTo(expected[0])
                        .isEqualTo(new Sampler(SamplingParams.greedy()).sample(logits, new TokenHistory(new int[0])))
                        .isEqualTo(hostToken.segment().get(ValueLayout.JAVA_INT, 0));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"NaN", "Infinity"})
    void aBadLogitGivesMinusOne(float bad) {
        int vocab = 5003;
        int hidden = 136;
        Random random = new Random(5);
        float[] weights = Parity.uniform(random, vocab * hidden, -1, 1);
        // A NaN weight makes a NaN logit; weights at bf16's largest finite value make one overflow.
        for (int i = 0; i < hidden; i++) {
            weights[4000 * hidden + i] = Float.isNaN(bad) ? (i == 7 ? Float.NaN : 0f) : 3.3e38f;
        }
        float[] h = new float[hidden];
        java.util.Arrays.fill(h, 1f);
        float[] normWeight = new float[hidden];
        java.util.Arrays.fill(normWeight, 1f);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix device = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(weights, vocab, hidden, DType.BF16)));
            LmHeadArgmaxKernel fused = scope.keep(new LmHeadArgmaxKernel(GpuFixture.kernels(), GpuFixture.device()));
            // Filled with 7s, not NaN: the NaN logit must be the kernel's.
            DeviceBuffer logits = scope.poisoned(vocab);
            logits.fill(Float.floatToRawIntBits(7f));
            DeviceBuffer token = scope.poisoned(1);
            fused.launch(scope.stream(), new GemvKernel.ResidualNorm(scope.upload(h), null, 1f, null,
                    scope.upload(normWeight), 1e-5f), device, logits, token);
            scope.stream().synchronize();
            float made = scope.download(logits, vocab)[4000];
            if (Float.isNaN(bad)) {
                assertThat(made).isNaN();
            } else {
                assertThat(made).isEqualTo(bad);
            }
            int[] actual = new int[1];
            token.copyTo(actual);
            assertThat(actual[0]).isEqualTo(-1);
        }
    }
}
