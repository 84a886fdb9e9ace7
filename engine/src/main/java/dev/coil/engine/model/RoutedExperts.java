package dev.coil.engine.model;

import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;
import java.util.Arrays;

/**
 * The routed experts of a mixture-of-experts block (GraniteMoeHybrid's block_sparse_moe), as
 * transformers computes them: the router scores each token against every expert, the
 * {@code perToken} best experts take the token, and their outputs are summed weighted by the softmax
 * of those best scores. Each expert is down(silu(gate(x)) · up(x)) with its gate and up rows stacked.
 *
 * <p>A token's sum runs over its experts in expert order, whatever other tokens share the step, so a
 * token's output does not depend on the batch (each product is per row, see {@link Ops#matmul}).
 */
public final class RoutedExperts {

    private final BlockSpec.Experts spec;
    private final Linear router; // [count, hidden]
    private final Matrix gateAndUp; // [count · 2·width, hidden]: expert e's rows from e · 2·width, gate first
    private final Matrix down; // [count · hidden, width]: expert e's rows from e · hidden

    public RoutedExperts(BlockSpec.Experts spec, Linear router, Matrix gateAndUp, Matrix down) {
        int hidden = router.inFeatures();
        if (router.outFeatures() != spec.count() || gateAndUp.rows() != spec.count() * 2 * spec.width()
                || gateAndUp.cols() != hidden || down.rows() != spec.count() * hidden || down.cols() != spec.width()) {
            throw new IllegalArgumentException("routed experts: router [" + router.outFeatures() + ", " + hidden
                    + "], gate/up [" + gateAndUp.rows() + ", " + gateAndUp.cols() + "], down [" + down.rows() + ", "
                    + down.cols() + "] do not fit " + spec);
        }
        this.spec = spec;
        this.router = router;
        this.gateAndUp = gateAndUp;
        this.down = down;
    }

    public BlockSpec.Experts spec() {
        return spec;
    }

    public Linear router() {
        return router;
    }

    /** Every expert's stacked gate and up rows, [count · 2·width, hidden]. */
    public Matrix gateAndUp() {
        return gateAndUp;
    }

    /** Every expert's down rows, [count · hidden, width]. */
    public Matrix down() {
        return down;
    }

    /**
     * x: [tokens, hidden] → [tokens, hidden], Σ over each token's experts in expert order of
     * weight · expert(x). Each expert multiplies the rows of the tokens it took in one product.
     */
    public float[] apply(Ops ops, float[] x, int tokens) {
        int hidden = router.inFeatures();
        int width = spec.width();
        Routing routing = route(router.apply(ops, x, tokens), tokens);
        float[] out = new float[tokens * hidden];
        for (int expert = 0; expert < spec.count(); expert++) {
            int[] taken = routing.tokensOf(expert);
            if (taken.length == 0) {
                continue;
            }
            float[] rows = new float[taken.length * hidden];
            for (int i = 0; i < taken.length; i++) {
                System.arraycopy(x, taken[i] * hidden, rows, i * hidden, hidden);
            }
            float[] projected = new float[taken.length * 2 * width];
            ops.matmul(rows, taken.length, gateAndUp.rowSlice(expert * 2 * width, 2 * width), projected);
            float[] activated = new float[taken.length * width];
            for (int i = 0; i < taken.length; i++) {
                for (int j = 0; j < width; j++) {
                    float gate = projected[i * 2 * width + j];
                    activated[i * width + j] = gate / (1f + (float) Math.exp(-gate)) * projected[i * 2 * width + width + j];
                }
            }
            float[] expertOut = new float[taken.length * hidden];
            ops.matmul(activated, taken.length, down.rowSlice(expert * hidden, hidden), expertOut);
            // Experts run in increasing order, so each token's sum adds its experts in that order.
            for (int i = 0; i < taken.length; i++) {
                float weight = routing.weight(taken[i], expert);
                int base = taken[i] * hidden;
                for (int j = 0; j < hidden; j++) {
                    out[base + j] += weight * expertOut[i * hidden + j];
                }
            }
        }
        return out;
    }

    /**
     * Each token's {@code perToken} best experts by score (a tie goes to the lower expert) and their
     * weights, the softmax of those scores in f32. scores: [tokens, count].
     */
    Routing route(float[] scores, int tokens) {
        int count = spec.count();
        int perToken = spec.perToken();
        int[] experts = new int[tokens * perToken];
        float[] weights = new float[tokens * perToken];
        Integer[] order = new Integer[count];
        for (int t = 0; t < tokens; t++) {
            int base = t * count;
            for (int e = 0; e < count; e++) {
                order[e] = e;
            }
            Arrays.sort(order, (a, b) -> {
                int byScore = Float.compare(scores[base + b], scores[base + a]);
                return byScore != 0 ? byScore : Integer.compare(a, b);
            });
            float best = scores[base + order[0]];
            float sum = 0f;
            for (int s = 0; s < perToken; s++) {
                float exponential = (float) Math.exp(scores[base + order[s]] - best);
                weights[t * perToken + s] = exponential;
                sum += exponential;
            }
            for (int s = 0; s < perToken; s++) {
                experts[t * perToken + s] = order[s];
                weights[t * perToken + s] /= sum;
            }
        }
        return new Routing(experts, weights, tokens, perToken, count);
    }

    /** experts, weights: [tokens, perToken], each token's experts in order of score. */
    record Routing(int[] experts, float[] weights, int tokens, int perToken, int count) {

        /** The tokens expert {@code expert} takes, in increasing order. */
        int[] tokensOf(int expert) {
            int[] taken = new int[tokens];
            int n = 0;
            for (int t = 0; t < tokens; t++) {
                for (int s = 0; s < perToken; s++) {
                    if (experts[t * perToken + s] == expert) {
                        taken[n++] = t;
                    }
                }
            }
            return Arrays.copyOf(taken, n);
        }

        /** The weight token {@code token} gives {@code expert} (which must be one of its experts). */
        float weight(int token, int expert) {
            for (int s = 0; s < perToken; s++) {
                if (experts[token * perToken + s] == expert) {
                    return weights[token * perToken + s];
                }
            }
            throw new IllegalArgumentException("token " + token + " was not routed to expert " + expert);
        }
    }
}
