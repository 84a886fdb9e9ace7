package dev.coil.engine.model;

import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.Ops;

/** y = x·Wᵀ (+ b). weight: [out, in]; bias: [out] or null. */
public record Linear(Matrix weight, float[] bias) {

    public int inFeatures() {
        return weight.cols();
    }

    public int outFeatures() {
        return weight.rows();
    }

    /** x: [tokens, in] → [tokens, out]. */
    public float[] apply(Ops ops, float[] x, int tokens) {
        float[] out = new float[tokens * weight.rows()];
        ops.matmul(x, tokens, weight, out);
        if (bias != null) {
            int width = weight.rows();
            for (int t = 0; t < tokens; t++) {
                for (int i = 0; i < width; i++) {
                    out[t * width + i] += bias[i];
                }
            }
        }
        return out;
    }
}
