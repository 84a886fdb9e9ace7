package dev.coil.engine.model;

import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;
import java.util.Arrays;

/**
 * The routed experts of a mixture-of-experts block, as transformers computes them: the router scores
 * each token against every expert, {@code perToken} experts take the token (chosen and weighted as
 * the spec's {@link BlockSpec.Router} says: GraniteMoeHybrid's softmax of the best scores, or
 * NemotronH's sigmoid scores with a correction bias, groups, normalisation and a scale), and their
 * outputs are summed with those weights. An expert is down(silu(gate(x)) · up(x)) with its gate and
 * up rows stacked (Granite), or down(relu(up(x))²) (NemotronH). Behind a latent projection
 * (NemotronH's moe_latent_size) the experts take fc1(x) instead of x and the sum goes through fc2:
 * fc2(Σ weight · expert(fc1(x))); the router reads x either way.
 *
 * <p>A token's sum runs over its experts in expert order, whatever other tokens share the step, so a
 * token's output does not depend on the batch (each product is per row, see {@link Ops#matmul}).
 */
public final class RoutedExperts {

    private final BlockSpec.Experts spec;
    private final Linear router; // [count, hidden]
    private final float[] correctionBias; // [count] for a sigmoid router, else null
    private final Matrix[] inputs; // expert e: [2·width, size] gate then up, or [width, size] up
    private final Matrix[] downs; // expert e: [size, width]
    private final Linear latentIn; // fc1_latent_proj [latent, hidden], or null
    private final Linear latentOut; // fc2_latent_proj [hidden, latent], or null

    /**
     * Experts that read and write the hidden rows (size = hidden).
     *
     * @param correctionBias [count], added to the sigmoid scores for the choice (a sigmoid router), or null (softmax)
     * @param inputs each expert's input rows, [{@link BlockSpec.ExpertKind#inputRows}(width), hidden]
     * @param downs each expert's down rows, [hidden, width]
     */
    public RoutedExperts(BlockSpec.Experts spec, Linear router, float[] correctionBias, Matrix[] inputs,
            Matrix[] downs) {
        this(spec, router, correctionBias, inputs, downs, null, null);
    }

    /**
     * Experts behind a latent projection when the spec names one (size = {@code spec.latent()}), else
     * as above with both projections null.
     *
     * @param inputs each expert's input rows, [{@link BlockSpec.ExpertKind#inputRows}(width), size]
     * @param downs each expert's down rows, [size, width]
     * @param latentIn fc1_latent_proj, [latent, hidden]
     * @param latentOut fc2_latent_proj, [hidden, latent]
     */
    public RoutedExperts(BlockSpec.Experts spec, Linear router, float[] correctionBias, Matrix[] inputs,
            Matrix[] downs, Linear latentIn, Linear latentOut) {
        int hidden = router.inFeatures();
        int size = spec.rowSize(hidden);
        int inputRows = spec.kind().inputRows(spec.width());
        if (router.outFeatures() != spec.count() || inputs.length != spec.count() || downs.length != spec.count()) {
            throw new IllegalArgumentException("routed experts: router [" + router.outFeatures() + ", " + hidden
                    + "], " + inputs.length + " input and " + downs.length + " down matrices do not fit " + spec);
        }
        boolean latent = spec.latent() > 0;
        if (latent != (latentIn != null) || latent != (latentOut != null) || (latent
                && (latentIn.outFeatures() != size || latentIn.inFeatures() != hidden
                        || latentOut.outFeatures() != hidden || latentOut.inFeatures() != size))) {
            throw new IllegalArgumentException("routed experts: the latent projections "
                    + (latentIn == null ? "null" : "[" + latentIn.outFeatures() + ", " + latentIn.inFeatures() + "]")
                    + " and " + (latentOut == null ? "null" : "[" + latentOut.outFeatures() + ", "
                            + latentOut.inFeatures() + "]") + " do not fit " + spec + " at hidden size " + hidden);
        }
        for (int e = 0; e < spec.count(); e++) {
            if (inputs[e].rows() != inputRows || inputs[e].cols() != size || downs[e].rows() != size
                    || downs[e].cols() != spec.width()) {
                throw new IllegalArgumentException("routed experts: expert " + e + "'s input [" + inputs[e].rows()
                        + ", " + inputs[e].cols() + "] and down [" + downs[e].rows() + ", " + downs[e].cols()
                        + "] do not fit " + spec);
            }
        }
        if (spec.router().sigmoid() != (correctionBias != null)
                || (correctionBias != null && correctionBias.length != spec.count())) {
            throw new IllegalArgumentException("routed experts: a sigmoid router takes a correction bias of "
                    + spec.count() + " values, a softmax router none");
        }
        this.spec = spec;
        this.router = router;
        this.correctionBias = correctionBias;
        this.inputs = inputs.clone();
        this.downs = downs.clone();
        this.latentIn = latentIn;
        this.latentOut = latentOut;
    }

    /**
     * Granite's experts from their stacked matrices: gateAndUp [count · 2·width, hidden] (expert e's rows
     * from e · 2·width, gate first), down [count · hidden, width].
     */
    public RoutedExperts(BlockSpec.Experts spec, Linear router, Matrix gateAndUp, Matrix down) {
        this(spec, router, null, slices(gateAndUp, spec.count()), slices(down, spec.count()));
    }

    /** A stacked matrix of {@code count} experts' rows as each expert's matrix. */
    public static Matrix[] slices(Matrix stacked, int count) {
        if (stacked.rows() % count != 0) {
            throw new IllegalArgumentException(stacked.rows() + " rows do not split into " + count + " experts");
        }
        int rows = stacked.rows() / count;
        Matrix[] parts = new Matrix[count];
        for (int e = 0; e < count; e++) {
            parts[e] = stacked.rowSlice(e * rows, rows);
        }
        return parts;
    }

    public BlockSpec.Experts spec() {
        return spec;
    }

    public Linear router() {
        return router;
    }

    /** The sigmoid router's correction bias [count], or null (softmax). */
    float[] correctionBias() {
        return correctionBias;
    }

    /** Expert e's input rows: [2·width, size] gate then up, or [width, size] up. */
    public Matrix input(int expert) {
        return inputs[expert];
    }

    /** Expert e's down rows, [size, width]. */
    public Matrix down(int expert) {
        return downs[expert];
    }

    /**
     * x: [tokens, hidden] → [tokens, hidden], Σ over each token's experts in expert order of
     * weight · expert(x), or fc2 of that sum over fc1(x) behind a latent projection. Each expert
     * multiplies the rows of the tokens it took in one product.
     */
    public float[] apply(Ops ops, float[] x, int tokens) {
        Routing routing = route(router.apply(ops, x, tokens), tokens);
        if (latentIn == null) {
            return sum(ops, x, tokens, routing);
        }
        float[] latentSum = sum(ops, latentIn.apply(ops, x, tokens), tokens, routing);
        return latentOut.apply(ops, latentSum, tokens);
    }

    /** x: [tokens, size] → [tokens, size], Σ over each token's experts in expert order of weight · expert(x). */
    private float[] sum(Ops ops, float[] x, int tokens, Routing routing) {
        int size = inputs[0].cols(); // hidden, or the latent size
        int width = spec.width();
        int inputRows = spec.kind().inputRows(width);
        float[] out = new float[tokens * size];
        for (int expert = 0; expert < spec.count(); expert++) {
            int[] taken = routing.tokensOf(expert);
            if (taken.length == 0) {
                continue;
            }
            float[] rows = new float[taken.length * size];
            for (int i = 0; i < taken.length; i++) {
                System.arraycopy(x, taken[i] * size, rows, i * size, size);
            }
            float[] projected = new float[taken.length * inputRows];
            ops.matmul(rows, taken.length, inputs[expert], projected);
            float[] activated = activate(projected, taken.length, width);
            float[] expertOut = new float[taken.length * size];
            ops.matmul(activated, taken.length, downs[expert], expertOut);
            // Experts run in increasing order, so each token's sum adds its experts in that order.
            for (int i = 0; i < taken.length; i++) {
                float weight = routing.weight(taken[i], expert);
                int base = taken[i] * size;
                for (int j = 0; j < size; j++) {
                    out[base + j] += weight * expertOut[i * size + j];
                }
            }
        }
        return out;
    }

    /** projected: [rows, inputRows] → [rows, width]: silu(gate) · up, or relu(up)². */
    private float[] activate(float[] projected, int rows, int width) {
        float[] activated = new float[rows * width];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < width; j++) {
                if (spec.kind() == BlockSpec.ExpertKind.GATED_SILU_STACKED) {
                    float gate = projected[i * 2 * width + j];
                    activated[i * width + j] = gate / (1f + (float) Math.exp(-gate)) * projected[i * 2 * width + width + j];
                } else {
                    float r = Math.max(projected[i * width + j], 0f);
                    activated[i * width + j] = r * r;
                }
            }
        }
        return activated;
    }

    /** Each token's experts and weights from the router's scores [tokens, count], as the spec's router says. */
    Routing route(float[] scores, int tokens) {
        return spec.router().sigmoid() ? routeSigmoid(scores, tokens) : routeSoftmax(scores, tokens);
    }

    /**
     * Each token's {@code perToken} best experts by score (a tie goes to the lower expert) and their
     * weights, the softmax of those scores in f32.
     */
    private Routing routeSoftmax(float[] scores, int tokens) {
        int count = spec.count();
        int perToken = spec.perToken();
        int[] experts = new int[tokens * perToken];
        float[] weights = new float[tokens * perToken];
        for (int t = 0; t < tokens; t++) {
            int base = t * count;
            Integer[] order = best(Arrays.copyOfRange(scores, base, base + count));
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

    /**
     * NemotronH's (DeepSeek-V3's) routing, as transformers' NemotronHTopkRouter in f32: s = sigmoid(score),
     * the choice value s + bias; the groups whose two best choice values sum highest (a tie to the lower
     * group) keep theirs, the others' become -infinity; the {@code perToken} best choice values (a tie to
     * the lower expert) take the token, weighted by their s, over the sum of those s (added best first)
     * plus 1e-20 when normalised, times the scale.
     */
    private Routing routeSigmoid(float[] scores, int tokens) {
        int count = spec.count();
        int perToken = spec.perToken();
        BlockSpec.Router rule = spec.router();
        int groupSize = count / rule.groups();
        int[] experts = new int[tokens * perToken];
        float[] weights = new float[tokens * perToken];
        float[] sigmoid = new float[count];
        float[] choice = new float[count];
        for (int t = 0; t < tokens; t++) {
            for (int e = 0; e < count; e++) {
                sigmoid[e] = 1f / (1f + (float) Math.exp(-scores[t * count + e]));
                choice[e] = sigmoid[e] + correctionBias[e];
            }
            if (rule.groups() > 1) {
                float[] groupScores = new float[rule.groups()];
                for (int g = 0; g < rule.groups(); g++) {
                    Integer[] order = best(Arrays.copyOfRange(choice, g * groupSize, (g + 1) * groupSize));
                    groupScores[g] = choice[g * groupSize + order[0]] + choice[g * groupSize + order[1]];
                }
                Integer[] groupOrder = best(groupScores);
                boolean[] kept = new boolean[rule.groups()];
                for (int g = 0; g < rule.groupsChosen(); g++) {
                    kept[groupOrder[g]] = true;
                }
                for (int e = 0; e < count; e++) {
                    if (!kept[e / groupSize]) {
                        choice[e] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
            Integer[] order = best(choice);
            float sum = 0f;
            for (int s = 0; s < perToken; s++) {
                sum += sigmoid[order[s]];
            }
            float denominator = sum + 1e-20f;
            for (int s = 0; s < perToken; s++) {
                float weight = sigmoid[order[s]];
                experts[t * perToken + s] = order[s];
                weights[t * perToken + s] = (rule.normalize() ? weight / denominator : weight) * rule.scale();
            }
        }
        return new Routing(experts, weights, tokens, perToken, count);
    }

    /** Indices of {@code values} from the largest down; a tie goes to the lower index. */
    private static Integer[] best(float[] values) {
        Integer[] order = new Integer[values.length];
        for (int i = 0; i < values.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> {
            int byValue = Float.compare(values[b], values[a]);
            return byValue != 0 ? byValue : Integer.compare(a, b);
        });
        return order;
    }

    /** experts, weights: [tokens, perToken], each token's experts in order of choice. */
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
