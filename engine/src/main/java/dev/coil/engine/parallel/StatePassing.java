package dev.coil.engine.parallel;

import dev.coil.engine.cpu.Lanes;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.ops.SsmShape;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Mamba-2 recurrence S_t = exp(dt_t·A)·S_{t-1} + dt_t·x_t⊗B_t, y_t = S_t·C_t + D·x_t is linear
 * in the state, so a chunk scanned from a zero state differs from the true scan only by the
 * contribution of the state it should have started from, S_in:
 * <pre>
 *   S_t = exp(cum_t)·S_in + S_t(local),      y_t = y_t(local) + C_t · (exp(cum_t)·S_in)
 *   cum_t = Σ_{s ≤ t} dt_s·A     (per head, over the chunk's tokens up to t)
 * </pre>
 * so chunks can be scanned at once on different devices, and only their final states need to
 * travel along the chain: S_in(k+1) = exp(cum_last(k))·S_in(k) + S_local(k).
 *
 * <p>Shapes: dt [tokens, heads]; cumulative [tokens, heads]; C [tokens, groups, stateSize];
 * states [heads, headDim, stateSize]; y [tokens, heads, headDim].
 */
public final class StatePassing {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private StatePassing() {
    }

    /** cum[t, h] = Σ_{s ≤ t} dt[s, h]·A[h]: the log of the decay from the chunk's start through token t. */
    public static float[] cumulativeLogDecay(int tokens, int heads, float[] dt, float[] A) {
        float[] cumulative = new float[tokens * heads];
        for (int h = 0; h < heads; h++) {
            double sum = 0;
            for (int t = 0; t < tokens; t++) {
                sum += (double) dt[t * heads + h] * A[h];
                cumulative[t * heads + h] = (float) sum;
            }
        }
        return cumulative;
    }

    /** The chunk's total log decay per head: the last row of its cumulative sum (0 for an empty chunk). */
    public static float[] totalLogDecay(int tokens, int heads, float[] cumulative) {
        float[] total = new float[heads];
        if (tokens > 0) {
            System.arraycopy(cumulative, (tokens - 1) * heads, total, 0, heads);
        }
        return total;
    }

    /** One link of the chain: the state after a chunk, S_out = exp(totalLogDecay)·S_in + S_local (per head). */
    public static float[] pass(SsmShape shape, float[] incoming, float[] totalLogDecay, float[] local) {
        int perHead = shape.headDim() * shape.stateSize();
        float[] outgoing = new float[shape.stateFloats()];
        for (int h = 0; h < shape.heads(); h++) {
            float decay = (float) Math.exp(totalLogDecay[h]);
            for (int i = h * perHead; i < (h + 1) * perHead; i++) {
                outgoing[i] = decay * incoming[i] + local[i];
            }
        }
        return outgoing;
    }

    /** Adds the incoming state's contribution to a chunk's locally scanned outputs: y_t += C_t·(exp(cum_t)·S_in). */
    public static void correct(Parallel parallel, SsmShape shape, int tokens, float[] cumulative, float[] C,
            float[] incoming, float[] y) {
        int heads = shape.heads();
        int headDim = shape.headDim();
        int stateSize = shape.stateSize();
        int groupWidth = shape.groups() * stateSize;
        parallel.forRange(tokens * heads, 16, (start, end) -> {
            for (int item = start; item < end; item++) {
                int t = item / heads;
                int h = item % heads;
                float decay = (float) Math.exp(cumulative[item]);
                int cOffset = t * groupWidth + shape.groupOfHead(h) * stateSize;
                for (int p = 0; p < headDim; p++) {
                    int stateOffset = (h * headDim + p) * stateSize;
                    y[item * headDim + p] += decay * dot(incoming, stateOffset, C, cOffset, stateSize);
                }
            }
        });
    }

    private static float dot(float[] a, int aOffset, float[] b, int bOffset, int length) {
        int n = 0;
        float sum = 0f;
        int bound = SPECIES.loopBound(length);
        if (bound > 0) {
            FloatVector acc = FloatVector.zero(SPECIES);
            for (; n < bound; n += SPECIES.length()) {
                acc = FloatVector.fromArray(SPECIES, a, aOffset + n)
                        .fma(FloatVector.fromArray(SPECIES, b, bOffset + n), acc);
            }
            sum = Lanes.sum(acc);
        }
        for (; n < length; n++) {
            sum += a[aOffset + n] * b[bOffset + n];
        }
        return sum;
    }
}
