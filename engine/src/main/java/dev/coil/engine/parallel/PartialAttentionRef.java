package dev.coil.engine.parallel;

import dev.coil.engine.ops.AttentionShape;

/**
 * The plain twin of {@link PartialAttention}: the full score row of each (query, head) in double
 * precision, every key tested against the mask on its own (no ordering assumed).
 */
public final class PartialAttentionRef {

    private PartialAttentionRef() {
    }

    public static void attend(AttentionShape shape, float scale, float[] q, int[] queryPositions, int queries,
            float[] keys, float[] values, int[] keyPositions, int keyCount, float[] out, float[] lse) {
        int headDim = shape.headDim();
        int kvStride = shape.kvHeads() * headDim;
        double[] scores = new double[keyCount];
        for (int query = 0; query < queries; query++) {
            for (int head = 0; head < shape.queryHeads(); head++) {
                int item = query * shape.queryHeads() + head;
                int kvOffset = shape.kvHeadOf(head) * headDim;
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < keyCount; j++) {
                    if (keyPositions[j] > queryPositions[query]) {
                        scores[j] = Double.NEGATIVE_INFINITY;
                        continue;
                    }
                    double score = 0;
                    for (int d = 0; d < headDim; d++) {
                        score += (double) q[item * headDim + d] * keys[j * kvStride + kvOffset + d];
                    }
                    scores[j] = score * scale;
                    max = Math.max(max, scores[j]);
                }
                if (max == Double.NEGATIVE_INFINITY) {
                    for (int d = 0; d < headDim; d++) {
                        out[item * headDim + d] = 0f;
                    }
                    lse[item] = Float.NEGATIVE_INFINITY;
                    continue;
                }
                double sum = 0;
                for (int j = 0; j < keyCount; j++) {
                    sum += Math.exp(scores[j] - max);
                }
                for (int d = 0; d < headDim; d++) {
                    double value = 0;
                    for (int j = 0; j < keyCount; j++) {
                        value += Math.exp(scores[j] - max) / sum * values[j * kvStride + kvOffset + d];
                    }
                    out[item * headDim + d] = (float) value;
                }
                lse[item] = (float) (max + Math.log(sum));
            }
        }
    }
}
