package dev.coil.engine.ref;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.SsmShape;
import org.junit.jupiter.api.Test;

/** The references against cases small enough to work out by hand. */
class SequenceRefTest {

    @Test
    void aSingleKeyGetsAllTheWeight() {
        AttentionShape shape = new AttentionShape(1, 1, 3);
        float[] q = {0.3f, -2f, 5f};
        float[] keys = {1f, 4f, -1f};
        float[] values = {0.5f, -1.5f, 2.5f};
        float[] out = new float[3];

        SequenceRef.attention(shape, 1, 0, 0.7f, q, keys, values, out);

        assertThat(out).containsExactly(0.5f, -1.5f, 2.5f);
    }

    @Test
    void twoKeysAreMixedBySoftmaxOfScaledScores() {
        AttentionShape shape = new AttentionShape(1, 1, 2);
        float[] q = {2f, 0f};
        float[] keys = {1f, 0f, 0f, 1f};           // scores 2·0.5 = 1 and 0
        float[] values = {1f, 10f, 3f, -2f};
        float[] out = new float[2];

        SequenceRef.attention(shape, 1, 1, 0.5f, q, keys, values, out);

        double first = Math.E / (Math.E + 1);
        double second = 1 / (Math.E + 1);
        assertThat((double) out[0]).isCloseTo(first * 1 + second * 3, within(1e-6));
        assertThat((double) out[1]).isCloseTo(first * 10 + second * -2, within(1e-6));
    }

    @Test
    void causalMaskHidesLaterKeysAndGroupsShareKvHeads() {
        // Two query heads on one kv head; the first of two new tokens sees only key 0.
        AttentionShape shape = new AttentionShape(2, 1, 1);
        float[] q = {1f, -1f, 1f, 1f};
        float[] keys = {1f, 2f};
        float[] values = {7f, -3f};
        float[] out = new float[4];

        SequenceRef.attention(shape, 2, 0, 1f, q, keys, values, out);

        assertThat(out[0]).isEqualTo(7f);
        assertThat(out[1]).isEqualTo(7f);
        double weightOfKey0 = Math.exp(1) / (Math.exp(1) + Math.exp(2));
        assertThat((double) out[2]).isCloseTo(weightOfKey0 * 7 + (1 - weightOfKey0) * -3, within(1e-6));
        assertThat(out[3]).isEqualTo(out[2]);
    }

    @Test
    void oneTokenFromZeroStateIsTheInputProjectedOnBAndC() {
        SsmShape shape = new SsmShape(1, 2, 1, 3);
        float[] x = {2f, -1f};
        float[] dt = {0.5f};
        float[] A = {-1.3f};
        float[] B = {1f, 2f, -1f};
        float[] C = {0.5f, 0.25f, 3f};
        float[] D = {0.1f};
        float[] state = new float[6];
        float[] y = new float[2];

        SequenceRef.scan(shape, 1, x, dt, A, B, C, D, state, y);

        double bDotC = 0.5 + 0.5 - 3;
        assertThat((double) y[0]).isCloseTo(0.5 * 2 * bDotC + 0.1 * 2, within(1e-6));
        assertThat((double) y[1]).isCloseTo(0.5 * -1 * bDotC + 0.1 * -1, within(1e-6));
        assertThat(state).containsExactly(1f, 2f, -1f, -0.5f, -1f, 0.5f);
    }

    @Test
    void theStateDecaysByExpOfDtTimesA() {
        // One channel, one state: s1 = e^{dt0·A}·s0 + dt0·x0·b0, s2 = e^{dt1·A}·s1 + dt1·x1·b1, y = s·c + D·x.
        SsmShape shape = new SsmShape(1, 1, 1, 1);
        float[] x = {1.5f, -0.5f};
        float[] dt = {0.2f, 0.7f};
        float[] A = {-2f};
        float[] B = {0.8f, 1.2f};
        float[] C = {2f, -1f};
        float[] D = {0.3f};
        float[] state = {4f};
        float[] y = new float[2];

        SequenceRef.scan(shape, 2, x, dt, A, B, C, D, state, y);

        double s1 = Math.exp(0.2 * -2) * 4 + 0.2 * 1.5 * 0.8;
        double s2 = Math.exp(0.7 * -2) * s1 + 0.7 * -0.5 * 1.2;
        assertThat((double) y[0]).isCloseTo(s1 * 2 + 0.3 * 1.5, within(1e-6));
        assertThat((double) y[1]).isCloseTo(s2 * -1 + 0.3 * -0.5, within(1e-6));
        assertThat((double) state[0]).isCloseTo(s2, within(1e-6));
    }

    @Test
    void headsUseTheirOwnGroupOfBAndC() {
        // Heads 0,1 read group 0 and heads 2,3 group 1; group 1's B is zero, so those heads see only D·x.
        SsmShape shape = new SsmShape(4, 1, 2, 1);
        float[] x = {1f, 1f, 1f, 1f};
        float[] dt = {1f, 1f, 1f, 1f};
        float[] A = {-1f, -1f, -1f, -1f};
        float[] B = {2f, 0f};
        float[] C = {3f, 5f};
        float[] D = {0f, 0f, 0.5f, 0.5f};
        float[] state = new float[4];
        float[] y = new float[4];

        SequenceRef.scan(shape, 1, x, dt, A, B, C, D, state, y);

        assertThat(y).containsExactly(6f, 6f, 0.5f, 0.5f);
    }
}
