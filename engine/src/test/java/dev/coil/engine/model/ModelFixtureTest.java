package dev.coil.engine.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ref.ReferenceOps;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Coil's forward pass against the logits HF transformers computed for the same checkpoints, on
 * both the CPU ops and the double-precision reference ops: prefill at every position, cached
 * decode steps, and greedy continuations.
 */
class ModelFixtureTest {

    /** "Within 1e-4 relative": the largest difference over a row, relative to the row's largest logit. */
    static final double TOLERANCE = 1e-4;

    private static final Parallel PARALLEL = new Parallel(2);

    @AfterAll
    static void closeModels() {
        TestModels.closeAll();
    }

    static Stream<Arguments> modelsAndOps() {
        return Fixtures.MODELS.stream().flatMap(name -> Stream.of(
                Arguments.of(name, "cpu"), Arguments.of(name, "ref")));
    }

    static Ops ops(String name) {
        return name.equals("cpu") ? new CpuOps(PARALLEL) : new ReferenceOps();
    }

    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("modelsAndOps")
    void prefillLogitsMatchTransformersAtEveryPosition(String fixture, String opsName) {
        HybridModel model = TestModels.load(fixture).model();
        Ops ops = ops(opsName);
        for (Fixtures.Case expected : Fixtures.expected(fixture).cases()) {
            SequenceState sequence = model.newSequence();
            float[] logits = model.forward(ops, sequence, expected.promptIds(), Phase.PREFILL, true);
            assertRowsClose(logits, expected.prefillLogits(), fixture + " prefill of " + expected.promptIds().length);
        }
    }

    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("modelsAndOps")
    void cachedDecodeLogitsMatchTransformers(String fixture, String opsName) {
        HybridModel model = TestModels.load(fixture).model();
        Ops ops = ops(opsName);
        for (Fixtures.Case expected : Fixtures.expected(fixture).cases()) {
            SequenceState sequence = model.newSequence();
            model.forward(ops, sequence, expected.promptIds(), Phase.PREFILL, false);
            for (int step = 0; step < expected.decodeIds().length; step++) {
                float[] logits = model.forward(ops, sequence, new int[] {expected.decodeIds()[step]}, Phase.DECODE, false);
                assertRowsClose(logits, new float[][] {expected.decodeLogits()[step]}, fixture + " decode step " + step);
            }
        }
    }

    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("modelsAndOps")
    void greedyContinuationEqualsTransformers(String fixture, String opsName) {
        HybridModel model = TestModels.load(fixture).model();
        Ops ops = ops(opsName);
        for (Fixtures.Greedy expected : Fixtures.expected(fixture).greedy()) {
            SequenceState sequence = model.newSequence();
            float[] logits = model.forward(ops, sequence, expected.promptIds(), Phase.PREFILL, false);
            int[] generated = new int[expected.generatedIds().length];
            for (int i = 0; i < generated.length; i++) {
                generated[i] = argmax(logits);
                logits = model.forward(ops, sequence, new int[] {generated[i]}, Phase.DECODE, false);
            }
            assertThat(generated).as(fixture + " greedy after " + Arrays.toString(expected.promptIds()))
                    .containsExactly(expected.generatedIds());
        }
    }

    static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    /** actual: rows × vocab, flattened; each row within TOLERANCE · max|expected row|. */
    static void assertRowsClose(float[] actual, float[][] expected, String what) {
        int vocab = expected[0].length;
        assertThat(actual).as(what + ": logits size").hasSize(expected.length * vocab);
        for (int row = 0; row < expected.length; row++) {
            double scale = 0;
            double worst = 0;
            for (int i = 0; i < vocab; i++) {
                scale = Math.max(scale, Math.abs(expected[row][i]));
                worst = Math.max(worst, Math.abs(actual[row * vocab + i] - expected[row][i]));
            }
            assertThat(worst).as(what + ", row " + row + ": max |coil - transformers| (row scale " + scale + ")")
                    .isLessThanOrEqualTo(TOLERANCE * Math.max(scale, 1e-3));
        }
    }
}
