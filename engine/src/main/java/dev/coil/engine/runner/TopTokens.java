package dev.coil.engine.runner;

import java.util.Arrays;

/**
 * Picks the largest entries of a score vector (logits, probabilities) without sorting all of it: a bounded
 * min-heap gives the k largest in O(V log k), which for k in the tens is one pass over a 100k+ vocabulary.
 * Order everywhere: larger score first, equal scores by lower id. Entries at -infinity are never picked.
 */
final class TopTokens {

    private TopTokens() {
    }

    /**
     * Writes the ids of the {@code k} largest finite entries of {@code scores[0, length)} to {@code out},
     * largest first.
     *
     * @param out room for at least k ids
     * @return how many were written: k, or fewer when fewer entries are above -infinity
     */
    static int largest(float[] scores, int length, int k, int[] out) {
        if (k <= 0) {
            return 0;
        }
        int size = 0;
        // out[0, size) is a heap whose root is the worst kept entry (smallest score, then largest id).
        for (int id = 0; id < length; id++) {
            float score = scores[id];
            if (score == Float.NEGATIVE_INFINITY) {
                continue;
            }
            if (size < k) {
                out[size] = id;
                siftUp(scores, out, size++);
            } else if (score > scores[out[0]]) {
                // Ids arrive in increasing order, so an equal score never displaces a kept (lower) id.
                out[0] = id;
                siftDown(scores, out, size);
            }
        }
        // Heap sort: repeatedly move the worst to the end, leaving best-first order.
        for (int end = size - 1; end > 0; end--) {
            int worst = out[0];
            out[0] = out[end];
            out[end] = worst;
            siftDown(scores, out, end);
        }
        return size;
    }

    /** Sorts {@code ids[0, count)} by score, largest first, equal scores by lower id. */
    static void sortDescending(float[] scores, int[] ids, int count) {
        long[] keys = new long[count];
        for (int i = 0; i < count; i++) {
            // High half orders by descending score (as a sortable int), low half by ascending id.
            keys[i] = ((long) sortableBits(-scores[ids[i]]) << 32) | ids[i];
        }
        Arrays.sort(keys);
        for (int i = 0; i < count; i++) {
            ids[i] = (int) keys[i];
        }
    }

    /** An int whose signed order is the float's numeric order (for non-NaN floats). */
    private static int sortableBits(float value) {
        int bits = Float.floatToIntBits(value + 0.0f);
        return bits ^ ((bits >> 31) & 0x7fffffff);
    }

    /** Whether entry a is worse than entry b: a smaller score, or an equal score and a larger id. */
    private static boolean worse(float[] scores, int a, int b) {
        return scores[a] < scores[b] || (scores[a] == scores[b] && a > b);
    }

    private static void siftUp(float[] scores, int[] heap, int index) {
        int i = index;
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (!worse(scores, heap[i], heap[parent])) {
                return;
            }
            swap(heap, i, parent);
            i = parent;
        }
    }

    private static void siftDown(float[] scores, int[] heap, int size) {
        int i = 0;
        while (true) {
            int left = 2 * i + 1;
            if (left >= size) {
                return;
            }
            int right = left + 1;
            int worst = right < size && worse(scores, heap[right], heap[left]) ? right : left;
            if (!worse(scores, heap[worst], heap[i])) {
                return;
            }
            swap(heap, i, worst);
            i = worst;
        }
    }

    private static void swap(int[] array, int a, int b) {
        int t = array[a];
        array[a] = array[b];
        array[b] = t;
    }
}
