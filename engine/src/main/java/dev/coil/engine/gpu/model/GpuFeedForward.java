package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.model.BlockSpec;

/** The MLP blocks of {@code FeedForward} on the device: down(silu(gate(x)) · up(x)) or down(relu(up(x))²). */
final class GpuFeedForward {

    private GpuFeedForward() {
    }

    /** x: [rows, hidden] f32 → out: [rows, hidden] f32. */
    static void forward(DeviceKernels k, GpuWeights.Mlp w, DeviceBuffer x, int rows, DeviceBuffer out) {
        int width = w.spec().intermediateSize();
        DeviceBuffer hidden = k.scratch.floats("mlp.hidden", (long) rows * width);
        if (w.spec().kind() == BlockSpec.MlpKind.SQUARED_RELU) {
            k.matmul.matmul(k.stream, x, rows, w.up(), hidden);
            k.squaredRelu.launch(k.stream, hidden, (long) rows * width, hidden);
        } else if (w.gateAndUp() != null) {
            DeviceBuffer stacked = k.scratch.floats("mlp.stacked", 2L * rows * width);
            k.matmul.matmul(k.stream, x, rows, w.gateAndUp(), stacked);
            k.siluMultiply.launchStacked(k.stream, stacked, rows, width, hidden);
        } else {
            DeviceBuffer gate = k.scratch.floats("mlp.gate", (long) rows * width);
            DeviceBuffer up = k.scratch.floats("mlp.up", (long) rows * width);
            k.matmul.matmul(k.stream, x, rows, w.gate(), gate);
            k.matmul.matmul(k.stream, x, rows, w.up(), up);
            k.siluMultiply.launch(k.stream, gate, width, up, width, rows, width, hidden);
        }
        k.matmul.matmul(k.stream, hidden, rows, w.down(), out);
    }
}
