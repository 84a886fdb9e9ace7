package dev.coil.engine.model;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.ops.PagedKeyValues;
import dev.coil.engine.ops.SsmShape;
import dev.coil.engine.runner.LoadedModel;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * How near each position of a prompt came to other experts in the CPU model's prefill: the smallest
 * margin, over the blocks with routed experts, between the choice that took the position's experts
 * and the one that would have taken another: the k-th and (k+1)-th best choice values (the logits of
 * a softmax router, s + bias of a sigmoid one), and with groups the sums of the last group kept and
 * the first one left out. A device that rounds the router's input differently may route a position
 * of small margin otherwise, and the logprob of the position after it then moves by far more than
 * the rounding.
 */
public final class RoutingMargins {

    private RoutingMargins() {
    }

    /** margins[t] for each of the prompt's positions (+infinity in a model without routed experts). */
    public static double[] of(LoadedModel loaded, int[] ids) {
        HybridModel model = loaded.model();
        Map<Matrix, RoutedExperts> routers = new IdentityHashMap<>();
        for (int block = 0; block < model.config().blocks().size(); block++) {
            if (model.mixer(block) instanceof FeedForward feedForward && feedForward.experts() != null) {
                routers.put(feedForward.experts().router().weight(), feedForward.experts());
            }
        }
        double[] margins = new double[ids.length];
        Arrays.fill(margins, Double.POSITIVE_INFINITY);
        Map<Matrix, Integer> rowsSeen = new IdentityHashMap<>();
        Ops recording = new Recording(new CpuOps()) {
            @Override
            public void matmul(float[] x, int tokens, Matrix w, float[] out) {
                super.matmul(x, tokens, w, out);
                RoutedExperts experts = routers.get(w);
                if (experts != null) {
                    int first = rowsSeen.merge(w, tokens, Integer::sum) - tokens;
                    for (int t = 0; t < tokens; t++) {
                        margins[first + t] = Math.min(margins[first + t], margin(experts, out, t));
                    }
                }
            }
        };
        model.forward(recording, model.newSequence(), ids, Phase.PREFILL, false);
        return margins;
    }

    /** Row {@code row} of the router's scores [rows, count]: its margin, as the class comment says. */
    static double margin(RoutedExperts experts, float[] scores, int row) {
        BlockSpec.Experts spec = experts.spec();
        BlockSpec.Router router = spec.router();
        int count = spec.count();
        double[] choice = new double[count];
        for (int e = 0; e < count; e++) {
            double score = scores[row * count + e];
            choice[e] = router.sigmoid() ? 1 / (1 + Math.exp(-score)) + experts.correctionBias()[e] : score;
        }
        double margin = Double.POSITIVE_INFINITY;
        if (router.groups() > 1) {
            int size = count / router.groups();
            double[] sums = new double[router.groups()];
            for (int g = 0; g < router.groups(); g++) {
                double[] members = Arrays.copyOfRange(choice, g * size, (g + 1) * size);
                Arrays.sort(members);
                sums[g] = members[size - 1] + members[size - 2];
            }
            double[] ranked = sums.clone();
            Arrays.sort(ranked);
            int kept = router.groupsChosen();
            if (kept < router.groups()) {
                double lastKept = ranked[router.groups() - kept];
                margin = lastKept - ranked[router.groups() - kept - 1];
                for (int e = 0; e < count; e++) {
                    if (sums[e / size] < lastKept) {
                        choice[e] = Double.NEGATIVE_INFINITY;
                    }
                }
            }
        }
        double[] ranked = choice.clone();
        Arrays.sort(ranked);
        int k = spec.perToken();
        if (k < count && ranked[count - k - 1] != Double.NEGATIVE_INFINITY) {
            margin = Math.min(margin, ranked[count - k] - ranked[count - k - 1]);
        }
        return margin;
    }

    /** Ops that hand every call to another. */
    private static class Recording implements Ops {

        private final Ops inner;

        Recording(Ops inner) {
            this.inner = inner;
        }

        @Override
        public String name() {
            return inner.name();
        }

        @Override
        public void matmul(float[] x, int tokens, Matrix w, float[] out) {
            inner.matmul(x, tokens, w, out);
        }

        @Override
        public void rmsNorm(float[] x, int tokens, int dim, float[] weight, float eps, float[] out) {
            inner.rmsNorm(x, tokens, dim, weight, eps, out);
        }

        @Override
        public void gatedRmsNorm(float[] y, float[] z, int tokens, int dim, int groupSize, float[] weight, float eps,
                float[] out) {
            inner.gatedRmsNorm(y, z, tokens, dim, groupSize, weight, eps, out);
        }

        @Override
        public void causalConv1d(float[] input, int tokens, int channels, float[] weight, float[] bias, int kernel,
                float[] state, float[] out) {
            inner.causalConv1d(input, tokens, channels, weight, bias, kernel, state, out);
        }

        @Override
        public void ssdScan(SsmShape shape, int tokens, int chunkSize, float[] x, float[] dt, float[] a, float[] b,
                float[] c, float[] d, float[] state, float[] y) {
            inner.ssdScan(shape, tokens, chunkSize, x, dt, a, b, c, d, state, y);
        }

        @Override
        public void ssmStep(SsmShape shape, float[] x, float[] dt, float[] a, float[] b, float[] c, float[] d,
                float[] state, float[] y) {
            inner.ssmStep(shape, x, dt, a, b, c, d, state, y);
        }

        @Override
        public void attention(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys,
                float[] values, float[] out) {
            inner.attention(shape, tokens, past, scale, q, keys, values, out);
        }

        @Override
        public void pagedAttention(AttentionShape shape, int tokens, int past, float scale, float[] q,
                PagedKeyValues cache, int[] blockTable, float[] out) {
            inner.pagedAttention(shape, tokens, past, scale, q, cache, blockTable, out);
        }

        @Override
        public void rope(float[] x, int tokens, int heads, int headDim, int rotaryDim, float theta,
                int firstPosition) {
            inner.rope(x, tokens, heads, headDim, rotaryDim, theta, firstPosition);
        }
    }
}
