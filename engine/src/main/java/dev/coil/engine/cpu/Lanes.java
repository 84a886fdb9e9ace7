package dev.coil.engine.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector sums and exponentials that give the same bits wherever they run. {@code reduceLanes(ADD)}
 * leaves its order to the implementation and {@code lanewise(EXP)} its approximation, and the
 * interpreter's and the compiled code's differ: a request's logprobs moved in their last bits
 * between its first runs after start and later ones. Here the sum folds the upper half of the lanes
 * onto the lower down to lane 0, and e^x is a range reduction, a polynomial and an exponent, all by
 * lanewise adds, multiplies and fused multiply-adds, which IEEE 754 rounds the same everywhere.
 */
public final class Lanes {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = FLOATS.length();
    /** Lane i takes lane i + 8, + 4, + 2, + 1 (mod the lanes): the folds of a 16-, 8-, 4- and 2-lane vector. */
    private static final VectorShuffle<Float> BY_8 = VectorShuffle.iota(FLOATS, 8 % LANES, 1, true);
    private static final VectorShuffle<Float> BY_4 = VectorShuffle.iota(FLOATS, 4 % LANES, 1, true);
    private static final VectorShuffle<Float> BY_2 = VectorShuffle.iota(FLOATS, 2 % LANES, 1, true);
    private static final VectorShuffle<Float> BY_1 = VectorShuffle.iota(FLOATS, 1 % LANES, 1, true);

    private static final float LOG2_E = 1.44269504088896341f;
    /** ln 2 in two parts: the high one has zeros in its low bits, so that n · LN2_HIGH is exact. */
    private static final float LN2_HIGH = 0.693145751953125f;
    private static final float LN2_LOW = 1.42860682030941723212e-6f;
    /** 1.5 · 2^23: added and taken away again, it rounds a float to the nearest integer. */
    private static final float ROUNDING = 12582912f;
    /** Below this e^x is under the smallest normal float: 0 here, as e^-inf. */
    private static final float SMALLEST = -87.33654f;
    /** Above this e^x overflows: infinity. */
    private static final float LARGEST = 88.72284f;

    private Lanes() {
    }

    /**
     * e^x per lane, within 2 ulps (LanesTest): x = n · ln 2 + r with |r| ≤ ln 2 / 2, e^r by its Taylor series
     * to r^7 (truncation below 1e-8 relative), times 2^n made from its exponent bits. 0 below
     * {@link #SMALLEST} (no subnormal results), infinity above {@link #LARGEST}, NaN for NaN.
     */
    public static FloatVector exp(FloatVector x) {
        FloatVector n = x.fma(LOG2_E, ROUNDING).sub(ROUNDING);
        FloatVector r = n.fma(FloatVector.broadcast(x.species(), -LN2_HIGH), x);
        r = n.fma(FloatVector.broadcast(x.species(), -LN2_LOW), r);
        // Horner: ((((((r/5040 + 1/720) r + 1/120) r + 1/24) r + 1/6) r + 1/2) r + 1) r + 1.
        FloatVector p = r.fma(1f / 5040, 1f / 720);
        for (float coefficient : new float[] {1f / 120, 1f / 24, 1f / 6, 0.5f, 1f, 1f}) {
            p = p.fma(r, FloatVector.broadcast(x.species(), coefficient));
        }
        // n reaches 128 just below LARGEST: 2^128 is no float, so p doubles and the exponent stays 127.
        p = p.blend(p.add(p), n.compare(VectorOperators.GT, 127f));
        IntVector exponent = (IntVector) n.max(-126f).min(127f).convert(VectorOperators.F2I, 0);
        FloatVector scale = exponent.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(scale).blend(0f, x.lt(SMALLEST)).blend(Float.POSITIVE_INFINITY, x.compare(VectorOperators.GT, LARGEST));
    }

    /** Σ of v's lanes in the order above (any species; the preferred one by folds, others lane by lane). */
    public static float sum(FloatVector v) {
        if (v.species() != FLOATS || LANES > 16) {
            return halves(v.toArray(), 0, v.length());
        }
        FloatVector folded = v;
        if (LANES >= 16) {
            folded = folded.add(folded.rearrange(BY_8));
        }
        if (LANES >= 8) {
            folded = folded.add(folded.rearrange(BY_4));
        }
        if (LANES >= 4) {
            folded = folded.add(folded.rearrange(BY_2));
        }
        if (LANES >= 2) {
            folded = folded.add(folded.rearrange(BY_1));
        }
        return folded.lane(0);
    }

    /** The same folds over lanes [from, from + count) of an array (count a power of two). */
    private static float halves(float[] lanes, int from, int count) {
        if (count == 1) {
            return lanes[from];
        }
        int half = count / 2;
        for (int i = 0; i < half; i++) {
            lanes[from + i] += lanes[from + half + i];
        }
        return halves(lanes, from, half);
    }
}
