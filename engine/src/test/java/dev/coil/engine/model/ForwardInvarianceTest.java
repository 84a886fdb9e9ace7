package dev.coil.engine.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.ops.Ops;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Invariances of the forward pass on the fixture models: a prompt split into prefill chunks
 * anywhere gives the logits of one call, and feeding tokens one at a time gives the logits of the
 * full forward (with the decode recurrence wherever transformers' prefill dt clamp is a no-op).
 */
class ForwardInvarianceTest {

    static final double TOLERANCE = 2e-5;
    private static final Ops OPS = new CpuOps(new Parallel(2));

    @AfterAll
    static void closeModels() {
        TestModels.closeAll();
    }

    static List<String> models() {
        return Fixtures.MODELS;
    }

    /** A prompt longer than several SSD chunks (chunk size 4 in the fixtures), not a multiple of it. */
    static int[] prompt(HybridModel model, int length, long seed) {
        Random random = new Random(seed);
        int[] ids = new int[length];
        for (int i = 0; i < length; i++) {
            ids[i] = 1 + random.nextInt(model.config().vocabSize() - 1);
        }
        return ids;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void chunkedPrefillSplitAnywhereEqualsOneShot(String fixture) {
        HybridModel model = TestModels.load(fixture).model();
        int[] ids = prompt(model, 23, 7);
        float[] oneShot = model.forward(OPS, model.newSequence(), ids, Phase.PREFILL, true);

        List<int[]> splits = List.of(new int[] {1}, new int[] {3}, new int[] {4}, new int[] {5, 6}, new int[] {22},
                new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22},
                new int[] {2, 9, 17});
        for (int[] cuts : splits) {
            SequenceState sequence = model.newSequence();
            List<Float> chunked = new ArrayList<>();
            int start = 0;
            for (int cut : append(cuts, ids.length)) {
                float[] logits = model.forward(OPS, sequence, Arrays.copyOfRange(ids, start, cut), Phase.PREFILL, true);
                for (float value : logits) {
                    chunked.add(value);
                }
                start = cut;
            }
            assertClose(toArray(chunked), oneShot, model.config().vocabSize(),
                    fixture + " split at " + Arrays.toString(cuts));
            assertThat(sequence.length()).isEqualTo(ids.length);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void stepByStepEqualsFullForward(String fixture) {
        HybridModel model = TestModels.load(fixture).model();
        int[] ids = prompt(model, 19, 11);
        float[] full = model.forward(OPS, model.newSequence(), ids, Phase.PREFILL, true);
        int vocab = model.config().vocabSize();

        boolean clampIsNoOp = model.config().blocks().stream()
                .noneMatch(block -> block instanceof BlockSpec.Mamba mamba
                        && (mamba.dtMin() > 0f || mamba.dtMax() < Float.POSITIVE_INFINITY));
        Phase stepPhase = clampIsNoOp ? Phase.DECODE : Phase.PREFILL;

        SequenceState sequence = model.newSequence();
        float[] stepped = new float[full.length];
        for (int t = 0; t < ids.length; t++) {
            Phase phase = t == 0 ? Phase.PREFILL : stepPhase;
            float[] logits = model.forward(OPS, sequence, new int[] {ids[t]}, phase, false);
            System.arraycopy(logits, 0, stepped, t * vocab, vocab);
        }
        assertClose(stepped, full, vocab, fixture + " one token at a time (" + stepPhase + ")");
    }

    private static int[] append(int[] values, int last) {
        int[] out = Arrays.copyOf(values, values.length + 1);
        out[values.length] = last;
        return out;
    }

    private static float[] toArray(List<Float> values) {
        float[] out = new float[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.get(i);
        }
        return out;
    }

    static void assertClose(float[] actual, float[] expected, int vocab, String what) {
        assertThat(actual).as(what + ": size").hasSameSizeAs(expected);
        for (int row = 0; row < expected.length / vocab; row++) {
            double scale = 0;
            double worst = 0;
            for (int i = row * vocab; i < (row + 1) * vocab; i++) {
                scale = Math.max(scale, Math.abs(expected[i]));
                worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
            }
            assertThat(worst).as(what + ", position " + row).isLessThanOrEqualTo(TOLERANCE * Math.max(scale, 1e-3));
        }
    }
}
