package dev.coil.engine.gpu.model;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.parallel.ShardLayout;
import dev.coil.engine.model.RoutingMargins;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.engine.runner.ScoreResult;
import java.io.IOException;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The sharded forward over two real GPUs (peer copies between the cards) against one GPU, on every
 * fixture: logprobs within {@code GpuShardedModelTest}'s sharded tolerance, greedy tokens equal to
 * one GPU's, as a ring of one and as the unsharded one-sequence forward ({@link GpuModel}). On a
 * machine with four GPUs or more, a ring of four is checked the same way. With the scan in tf32
 * ({@code --ssd-precision tf32}), two cards give what two ring devices on one card give.
 * Tagged multi-gpu: run on a machine with two GPUs (scripts/gpu-run.sh ring); with fewer it fails.
 */
@Tag("multi-gpu")
class TwoGpuShardedModelTest {

    /** Logprobs of one ring on two cards against the same ring's devices on one card. */
    private static final double SAME_KERNELS_TOLERANCE = 1e-6;

    static List<String> models() {
        return GpuModelTest.MODELS;
    }

    /** Greedy tokens of the one-GPU forward that serving uses for a single sequence (paged cache, no sharding). */
    static int[] plainGreedy(LoadedModel loaded, int[] prompt, int steps) {
        try (GpuModel model = GpuModel.upload(GpuFixture.device(), GpuFixture.stream(), loaded);
                GpuSequence sequence = model.newSequence(prompt.length + steps)) {
            int[] tokens = new int[steps];
            float[] logits = model.prefill(sequence, prompt);
            for (int i = 0; i < steps; i++) {
                tokens[i] = GpuModelTest.argmax(logits);
                if (i + 1 < steps) {
                    logits = model.decode(sequence, tokens[i]);
                }
            }
            return tokens;
        }
    }

    /** The rings to check: two GPUs, and four where the machine has them. */
    static List<Integer> ringSizes() {
        int count = CudaDevice.count();
        assertThat(count).as("GPUs this multi-GPU test needs").isGreaterThanOrEqualTo(2);
        return count >= 4 ? List.of(2, 4) : List.of(2);
    }

    /** cuda:0 .. cuda:(gpus − 1). */
    static String devices(int gpus) {
        StringBuilder list = new StringBuilder();
        for (int i = 0; i < gpus; i++) {
            list.append(i == 0 ? "" : ",").append("cuda:").append(i);
        }
        return list.toString();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void twoGpusGiveOneGpusLogprobsAndGreedyTokens(String fixture) throws IOException {
        JsonNode expected = GpuModelTest.expected(fixture);
        SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(8).build();
        try (LoadedModel loaded = LoadedModel.load(GpuModelTest.withoutTokenizer(fixture));
                GpuShardedModel one = GpuShardedModel.open(loaded, Devices.parse("cuda:0"))) {
            int[] ids = GpuShardedModelTest.prompt(300, loaded.config().vocabSize(), 11);
            ScoreResult single = one.score(ids, 0, ShardLayout.CONTIGUOUS).result();
            double[] margins = RoutingMargins.of(loaded, ids);
            for (int gpus : ringSizes()) {
                String ring = devices(gpus);
                try (GpuShardedModel sharded = GpuShardedModel.open(loaded, Devices.parse(ring))) {
                    for (ShardLayout layout : ShardLayout.values()) {
                        GpuShardedModelTest.assertClose(loaded, margins, sharded.score(ids, 0, layout).result(), single,
                                GpuShardedModelTest.SHARDED_TOLERANCE, fixture + " " + ring + " " + layout
                                        + " vs cuda:0");
                    }
                    for (JsonNode item : expected.get("greedy")) {
                        int[] prompt = GpuModelTest.ints(item.get("prompt_ids"));
                        int[] oneTokens = GpuShardedModelTest.generate(loaded, one, ShardLayout.CONTIGUOUS, prompt,
                                greedy);
                        int[] ringTokens = GpuShardedModelTest.generate(loaded, sharded, ShardLayout.ZIGZAG, prompt,
                                greedy);
                        int[] plainTokens = plainGreedy(loaded, prompt, greedy.maxTokens());
                        System.out.println("[gpu-ring] " + fixture + " greedy on " + gpus + " GPUs "
                                + Arrays.toString(ringTokens) + ", on one " + Arrays.toString(oneTokens)
                                + ", GpuModel " + Arrays.toString(plainTokens));
                        assertThat(ringTokens).as(fixture + " greedy, " + gpus + " GPUs vs one")
                                .containsExactly(oneTokens);
                        assertThat(ringTokens).as(fixture + " greedy, " + gpus + " GPUs vs the one-GPU forward")
                                .containsExactly(plainTokens);
                    }
                }
            }
        }
    }

    /**
     * {@code --ssd-precision tf32} over two cards: the logprobs and greedy tokens of two ring devices
     * on one card (where {@code GpuShardedModelTest} checks tf32 against f32), since each shard runs
     * the same kernels on the same rows whichever card holds it; and not the f32 ring's logprobs, so
     * the precision reached both cards.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void aTf32ScanOnTwoGpusGivesWhatTwoRingDevicesOnOneCardGive(String fixture) throws IOException {
        SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(8).build();
        try (LoadedModel loaded = LoadedModel.load(GpuModelTest.withoutTokenizer(fixture));
                GpuShardedModel twoCards = GpuShardedModel.open(loaded, Devices.parse(devices(2)),
                        SsdScanKernel.Precision.TF32);
                GpuShardedModel oneCard = GpuShardedModel.onDevices(loaded,
                        Collections.nCopies(2, GpuFixture.device()), List.of(), 0, SsdScanKernel.Precision.TF32);
                GpuShardedModel f32 = GpuShardedModel.open(loaded, Devices.parse(devices(2)))) {
            int[] ids = GpuShardedModelTest.prompt(300, loaded.config().vocabSize(), 11);
            ScoreResult onTwoCards = twoCards.score(ids, 0, ShardLayout.ZIGZAG).result();
            // The same kernels on the same rows: equal on two cards of one kind (0 on two H100s).
            GpuShardedModelTest.assertClose(onTwoCards, oneCard.score(ids, 0, ShardLayout.ZIGZAG).result(),
                    SAME_KERNELS_TOLERANCE, fixture + " tf32 ring, two cards vs one");
            double fromF32 = GpuShardedModelTest.largestLogprobDifference(onTwoCards,
                    f32.score(ids, 0, ShardLayout.ZIGZAG).result());
            System.out.printf("[gpu-ring] %s, tf32 ring on two cards vs the f32 one: largest |Δ logprob| %.3e%n",
                    fixture, fromF32);
            assertThat(fromF32).as(fixture + ": the tf32 ring on two cards differs from the f32 one").isPositive()
                    .isLessThan(GpuShardedModelTest.TF32_SCAN_TOLERANCE);
            JsonNode expected = GpuModelTest.expected(fixture);
            for (JsonNode item : expected.get("greedy")) {
                int[] prompt = GpuModelTest.ints(item.get("prompt_ids"));
                assertThat(GpuShardedModelTest.generate(loaded, twoCards, ShardLayout.ZIGZAG, prompt, greedy))
                        .as(fixture + " tf32 greedy, two cards vs one")
                        .containsExactly(GpuShardedModelTest.generate(loaded, oneCard, ShardLayout.ZIGZAG, prompt,
                                greedy));
            }
        }
    }
}
