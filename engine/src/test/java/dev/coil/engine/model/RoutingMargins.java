package dev.coil.engine.model;

import dev.coil.engine.cpu.CpuOps;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;
import dev.coil.engine.runner.LoadedModel;
import java.lang.reflect.Proxy;
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
        Ops cpu = new CpuOps();
        // The CPU's ops, watched: after a router's product, each row's margin (the rows of a router
        // come in order, so its count of rows seen places them in the prompt).
        Ops recording = (Ops) Proxy.newProxyInstance(Ops.class.getClassLoader(), new Class<?>[] {Ops.class},
                (proxy, method, arguments) -> {
                    Object result = method.invoke(cpu, arguments);
                    if (method.getName().equals("matmul")
                            && routers.get(arguments[2]) instanceof RoutedExperts experts) {
                        int tokens = (int) arguments[1];
                        float[] scores = (float[]) arguments[3];
                        int first = rowsSeen.merge((Matrix) arguments[2], tokens, Integer::sum) - tokens;
                        for (int t = 0; t < tokens; t++) {
                            margins[first + t] = Math.min(margins[first + t], margin(experts, scores, t));
                        }
                    }
                    return result;
                });
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
}
