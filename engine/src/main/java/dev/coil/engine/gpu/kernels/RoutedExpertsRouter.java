package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;

/**
 * How a row's experts are chosen and weighed (routed_experts.cuh's RoutedExpertsRouter): softmax,
 * the k best logits weighted by their softmax (Granite); or sigmoid, s = sigmoid(logit), chosen by
 * s + correctionBias[e] within the {@code groupsChosen} best of {@code groups} groups (two best values
 * summed), weighted by s (over their sum plus 1e-20 when {@code normalize}) times {@code scale}
 * (NemotronH).
 *
 * @param correctionBias (E) f32 for a sigmoid router, null for softmax
 */
public record RoutedExpertsRouter(boolean sigmoid, DeviceBuffer correctionBias, int groups, int groupsChosen,
        boolean normalize, float scale) {

    public static final RoutedExpertsRouter SOFTMAX = new RoutedExpertsRouter(false, null, 1, 1, true, 1f);

    public RoutedExpertsRouter {
        if (sigmoid != (correctionBias != null)) {
            throw new IllegalArgumentException("a sigmoid router takes a correction bias, a softmax router none");
        }
        if (groups < 1 || groups > RoutedExpertsKernel.MAX_GROUPS || groupsChosen < 1 || groupsChosen > groups
                || !(scale > 0f) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException("router: " + groupsChosen + " of " + groups + " groups (at most "
                    + RoutedExpertsKernel.MAX_GROUPS + "), scale " + scale
                    + "; need 1 <= chosen <= groups and a finite scale > 0");
        }
        if (!sigmoid && (groups != 1 || !normalize || scale != 1f)) {
            throw new IllegalArgumentException("a softmax router has one group, normalised weights and scale 1");
        }
    }

    public static RoutedExpertsRouter sigmoid(DeviceBuffer correctionBias, int groups, int groupsChosen,
            boolean normalize, float scale) {
        return new RoutedExpertsRouter(true, correctionBias, groups, groupsChosen, normalize, scale);
    }

    /** ROUTED_EXPERTS_SOFTMAX, _SIGMOID or _SIGMOID_NORMALIZED. */
    int scoring() {
        return !sigmoid ? 0 : normalize ? 2 : 1;
    }

    long biasAddress() {
        return correctionBias == null ? 0L : correctionBias.address();
    }

    /** Checks the router against E experts, k a row. */
    void require(int experts, int perToken) {
        if (experts % groups != 0 || (groups > 1 && experts / groups < 2)) {
            throw new IllegalArgumentException(experts + " experts do not split into " + groups
                    + " groups of at least 2");
        }
        if (perToken > groupsChosen * (experts / groups)) {
            throw new IllegalArgumentException(perToken + " experts a row, but " + groupsChosen
                    + " chosen groups hold " + groupsChosen * (experts / groups));
        }
        if (correctionBias != null) {
            correctionBias.requireFloats(experts, "correctionBias");
        }
    }
}
