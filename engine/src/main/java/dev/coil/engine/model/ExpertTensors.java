package dev.coil.engine.model;

import dev.coil.engine.load.Checkpoint;
import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.ops.Matrix;

/**
 * Where a checkpoint keeps a block's routed experts ({@link BlockSpec.ExpertKind} lists the names), read
 * as each expert's matrices over the mapped bytes: the CPU model multiplies them as they are, the GPU
 * model copies them into one stacked matrix.
 */
public final class ExpertTensors {

    private ExpertTensors() {
    }

    /** The router's weight, [count, hidden]. */
    public static String routerName(BlockSpec.Experts spec) {
        return spec.prefix() + (spec.kind() == BlockSpec.ExpertKind.GATED_SILU_STACKED ? "router.layer" : "gate")
                + ".weight";
    }

    /** The sigmoid router's correction bias, [count] (only a sigmoid router has one). */
    public static String correctionBiasName(BlockSpec.Experts spec) {
        return spec.prefix() + "gate.e_score_correction_bias";
    }

    /**
     * Each expert's input rows: [2·width, size] gate then up, or [width, size] up, where size is the
     * hidden size, or the latent size behind a latent projection ({@link BlockSpec.Experts#rowSize}).
     */
    public static Matrix[] inputs(Checkpoint checkpoint, BlockSpec.Experts spec, int hidden) {
        int rows = spec.kind().inputRows(spec.width());
        int size = spec.rowSize(hidden);
        return spec.kind() == BlockSpec.ExpertKind.GATED_SILU_STACKED
                ? stacked(checkpoint, spec.prefix() + "input_linear.weight", spec.count(), rows, size)
                : stackedOrEach(checkpoint, spec, "up_proj", rows, size);
    }

    /** Each expert's down rows, [size, width] (size as {@link #inputs} says). */
    public static Matrix[] downs(Checkpoint checkpoint, BlockSpec.Experts spec, int hidden) {
        int size = spec.rowSize(hidden);
        return spec.kind() == BlockSpec.ExpertKind.GATED_SILU_STACKED
                ? stacked(checkpoint, spec.prefix() + "output_linear.weight", spec.count(), size, spec.width())
                : stackedOrEach(checkpoint, spec, "down_proj", size, spec.width());
    }

    private static Matrix[] stacked(Checkpoint checkpoint, String name, int count, int rows, int cols) {
        return RoutedExperts.slices(checkpoint.stackedMatrix(name, count, rows, cols), count);
    }

    /**
     * NemotronH's experts: experts.{e}.{name}.weight, one tensor an expert (as the hub's checkpoints and
     * transformers' save_pretrained write them), or experts.{name} [count, rows, cols] (transformers'
     * fused parameter as it stands in memory).
     */
    private static Matrix[] stackedOrEach(Checkpoint checkpoint, BlockSpec.Experts spec, String name, int rows,
            int cols) {
        String fused = spec.prefix() + "experts." + name;
        if (checkpoint.has(fused)) {
            return stacked(checkpoint, fused, spec.count(), rows, cols);
        }
        if (!checkpoint.has(eachName(spec, 0, name))) {
            throw new CheckpointException(checkpoint.folder() + " has neither '" + eachName(spec, 0, name) + "' nor '"
                    + fused + "'; a NemotronH block with experts needs one of them for each of its " + spec.count()
                    + " experts.");
        }
        Matrix[] parts = new Matrix[spec.count()];
        for (int e = 0; e < spec.count(); e++) {
            parts[e] = checkpoint.matrix(eachName(spec, e, name), rows, cols);
        }
        return parts;
    }

    private static String eachName(BlockSpec.Experts spec, int expert, String name) {
        return spec.prefix() + "experts." + expert + "." + name + ".weight";
    }
}
