package dev.coil.engine.parallel;

import dev.coil.engine.cpu.Lanes;
import dev.coil.engine.cpu.Parallel;
import dev.coil.engine.ops.AttentionShape;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Attention of some queries to some keys, where neither need be all of a sequence: the unit of
 * ring attention. Query i at global position qp_i sees key j at kp_j when kp_j ≤ qp_i (the causal
 * mask by global positions), and the result is a partial one: the softmax-weighted value sum over
 * the visible keys of this block only, with its log-sum-exp
 * <pre>
 *   lse[i, h] = log Σ_{j visible} exp(s_ij),   out[i, h] = Σ_{j visible} exp(s_ij − lse[i, h]) · v_j,
 *   s_ij = q_ih · k_j,kv(h) · scale
 * </pre>
 * so that partials over disjoint key blocks combine exactly ({@link #merge}). A query that sees no
 * key of the block gets out = 0 and lse = −∞. Flash style: keys are visited in tiles with an online
 * softmax (a running maximum and sum), the score matrix is never built.
 *
 * <p>Shapes: q, out [queries, queryHeads, headDim]; keys, values [keyCount, kvHeads, headDim];
 * lse [queries, queryHeads]; queryPositions [queries]; keyPositions [keyCount], ascending.
 * Query head h reads kv head h / (queryHeads / kvHeads) (GQA).
 */
public final class PartialAttention {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int KEY_TILE = 64;

    private PartialAttention() {
    }

    public static void attend(Parallel parallel, AttentionShape shape, float scale, float[] q, int[] queryPositions,
            int queries, float[] keys, float[] values, int[] keyPositions, int keyCount, float[] out, float[] lse) {
        int heads = shape.queryHeads();
        int minGrain = Math.max(1, 4096 / Math.max(1, keyCount));
        parallel.forRange(queries * heads, minGrain, (start, end) -> {
            float[] scores = new float[KEY_TILE];
            float[] accumulator = new float[shape.headDim()];
            for (int item = start; item < end; item++) {
                int query = item / heads;
                int visible = visibleKeys(keyPositions, keyCount, queryPositions[query]);
                lse[item] = attendOne(shape, scale, q, item, keys, values, item % heads, visible, scores,
                        accumulator, out);
            }
        });
    }

    /** One (query, head): the online softmax over tiles of its visible keys; returns the lse, writes out. */
    private static float attendOne(AttentionShape shape, float scale, float[] q, int item, float[] keys,
            float[] values, int head, int visible, float[] scores, float[] accumulator, float[] out) {
        int headDim = shape.headDim();
        int queryOffset = item * headDim;
        int kvStride = shape.kvHeads() * headDim;
        int kvOffset = shape.kvHeadOf(head) * headDim;
        Arrays.fill(accumulator, 0f);
        float runningMax = Float.NEGATIVE_INFINITY;
        float runningSum = 0f;
        for (int tile = 0; tile < visible; tile += KEY_TILE) {
            int count = Math.min(KEY_TILE, visible - tile);
            float tileMax = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < count; j++) {
                scores[j] = dot(q, queryOffset, keys, (tile + j) * kvStride + kvOffset, headDim) * scale;
                tileMax = Math.max(tileMax, scores[j]);
            }
            float newMax = Math.max(runningMax, tileMax);
            float rescale = (float) Math.exp(runningMax - newMax);
            runningSum *= rescale;
            scaleInPlace(accumulator, rescale);
            for (int j = 0; j < count; j++) {
                float weight = (float) Math.exp(scores[j] - newMax);
                runningSum += weight;
                addScaled(accumulator, values, (tile + j) * kvStride + kvOffset, weight);
            }
            runningMax = newMax;
        }
        if (visible == 0) {
            Arrays.fill(out, queryOffset, queryOffset + headDim, 0f);
            return Float.NEGATIVE_INFINITY;
        }
        float inverse = 1f / runningSum;
        for (int d = 0; d < headDim; d++) {
            out[queryOffset + d] = accumulator[d] * inverse;
        }
        return runningMax + (float) Math.log(runningSum);
    }

    /**
     * Folds partial b into partial a, in place, by the log-sum-exp rule:
     * lse = log(exp(lse_a) + exp(lse_b)), out = exp(lse_a − lse)·out_a + exp(lse_b − lse)·out_b.
     * out: [items, headDim]; lse: [items] (an item is a (query, head) pair).
     */
    public static void merge(int items, int headDim, float[] outA, float[] lseA, float[] outB, float[] lseB) {
        for (int item = 0; item < items; item++) {
            float a = lseA[item];
            float b = lseB[item];
            if (b == Float.NEGATIVE_INFINITY) {
                continue;
            }
            float max = Math.max(a, b);
            float weightA = (float) Math.exp(a - max);
            float weightB = (float) Math.exp(b - max);
            float total = weightA + weightB;
            float scaleA = weightA / total;
            float scaleB = weightB / total;
            int offset = item * headDim;
            for (int d = 0; d < headDim; d++) {
                outA[offset + d] = scaleA * outA[offset + d] + scaleB * outB[offset + d];
            }
            lseA[item] = max + (float) Math.log(total);
        }
    }

    /** How many of the ascending key positions are ≤ the query's: the visible prefix. */
    static int visibleKeys(int[] keyPositions, int keyCount, int queryPosition) {
        int low = 0;
        int high = keyCount;
        while (low < high) {
            int middle = (low + high) >>> 1;
            if (keyPositions[middle] <= queryPosition) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        return low;
    }

    private static float dot(float[] a, int aOffset, float[] b, int bOffset, int length) {
        int d = 0;
        float sum = 0f;
        int bound = SPECIES.loopBound(length);
        if (bound > 0) {
            FloatVector acc = FloatVector.zero(SPECIES);
            for (; d < bound; d += SPECIES.length()) {
                acc = FloatVector.fromArray(SPECIES, a, aOffset + d)
                        .fma(FloatVector.fromArray(SPECIES, b, bOffset + d), acc);
            }
            sum = Lanes.sum(acc);
        }
        for (; d < length; d++) {
            sum += a[aOffset + d] * b[bOffset + d];
        }
        return sum;
    }

    private static void addScaled(float[] accumulator, float[] values, int offset, float weight) {
        int d = 0;
        int bound = SPECIES.loopBound(accumulator.length);
        for (; d < bound; d += SPECIES.length()) {
            FloatVector.fromArray(SPECIES, values, offset + d)
                    .fma(FloatVector.broadcast(SPECIES, weight), FloatVector.fromArray(SPECIES, accumulator, d))
                    .intoArray(accumulator, d);
        }
        for (; d < accumulator.length; d++) {
            accumulator[d] += weight * values[offset + d];
        }
    }

    private static void scaleInPlace(float[] accumulator, float factor) {
        for (int d = 0; d < accumulator.length; d++) {
            accumulator[d] *= factor;
        }
    }
}
