package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.kernels.SsdScanKernel;
import dev.coil.engine.gpu.kernels.SsmStateUpdateKernel;
import dev.coil.engine.model.BlockSpec;
import dev.coil.engine.ops.SsmShape;

/**
 * The Mamba-2 mixer of {@code Mamba2Mixer} on the device, for one sequence:
 * z | xBC | dt = in_proj(u); x | B | C = silu(conv(xBC)); y = SSM(x, dt, A, B, C) + D·x;
 * out = out_proj(gated_rmsnorm(y, z)). A prompt runs the conv over its rows and the SSD scan
 * (dt clamped to [dtMin, dtMax]); one generated token runs the conv update and the state update
 * (dt's bias and softplus folded into it, no clamp).
 */
final class GpuMamba {

    private GpuMamba() {
    }

    /** u: [rows, hidden] f32 → out: [rows, hidden] f32; the sequence's conv and SSM state advance. */
    static void forward(DeviceKernels k, GpuWeights.Mamba w, GpuSequence.MambaState state, DeviceBuffer u, int rows,
            boolean prompt, DeviceBuffer out) {
        BlockSpec.Mamba spec = w.spec();
        SsmShape shape = new SsmShape(spec.heads(), spec.headDim(), spec.groups(), spec.stateSize());
        int inner = spec.innerSize();
        int channels = spec.convChannels();
        int heads = spec.heads();
        int groupWidth = spec.groups() * spec.stateSize();
        int width = inner + channels + heads;

        DeviceBuffer projected = k.scratch.floats("mamba.projected", (long) rows * width);
        k.matmul.matmul(k.stream, u, rows, w.inProjection(), projected);
        DeviceBuffer xbc = projected.floatSlice(inner, projected.floats() - inner);
        DeviceBuffer convolved = k.scratch.floats("mamba.convolved", (long) rows * channels);
        DeviceBuffer x = convolved;
        DeviceBuffer b = convolved.floatSlice(inner, convolved.floats() - inner);
        DeviceBuffer c = convolved.floatSlice(inner + groupWidth, convolved.floats() - inner - groupWidth);
        DeviceBuffer y = k.scratch.floats("mamba.y", (long) rows * inner);
        DeviceBuffer z = projected;
        if (prompt) {
            k.conv.launch(k.stream, xbc, width, rows, channels, w.convWeight(), w.convBias(), spec.convKernel(),
                    state.conv(), convolved);
            DeviceBuffer dt = promptDt(k, w, projected, rows, width, rows);
            SsdScanKernel.Inputs inputs = new SsdScanKernel.Inputs(x, channels, dt, heads, b, c, channels);
            DeviceBuffer workspace = k.scratch.bytes("mamba.ssd",
                    SsdScanKernel.workspaceBytes(shape, 1, rows, spec.chunkSize()));
            k.ssdScan.launch(k.stream, SsdScanKernel.Precision.F32, shape, 1, rows, spec.chunkSize(), inputs, w.decay(),
                    w.skip(), state.ssm(), null, y, workspace);
            z = k.scratch.floats("mamba.z", (long) rows * inner);
            DeviceCopy.rows(k.stream, projected, width, 0, z, inner, 0, rows, inner);
        } else {
            if (rows != 1) {
                throw new IllegalArgumentException("a decode step takes one token per sequence, not " + rows);
            }
            DeviceBuffer slot = k.scratch.floats("mamba.slot", 1);
            slot.fillAsync(0, k.stream);
            k.convUpdate.launch(k.stream, xbc, width, 1, channels, w.convWeight(), w.convBias(), spec.convKernel(),
                    state.conv(), slot, convolved);
            SsmStateUpdateKernel.Step step = new SsmStateUpdateKernel.Step(
                    projected.floatSlice(inner + channels, heads), width, w.dtBias(), true);
            k.ssmUpdate.launch(k.stream, shape, 1, x, channels, step, w.decay(), b, c, channels, w.skip(), state.ssm(),
                    slot, y);
        }
        k.gatedRmsNorm.launch(k.stream, y, z, rows, inner, spec.normGroupSize(), w.norm(), spec.normEps(), y);
        k.matmul.matmul(k.stream, y, rows, w.outProjection(), out);
    }

    /**
     * dt = softplus(dt + dt_bias) for the rows of a chunk, clamped to [dtMin, dtMax] for its first
     * {@code clamped} rows (prompt tokens; the rest are generated tokens being recomputed), as
     * {@code Mamba2Mixer} takes it: [rows, heads] through the host (a few floats a row; prefill only).
     */
    static DeviceBuffer promptDt(DeviceKernels k, GpuWeights.Mamba w, DeviceBuffer projected, int rows, int width,
            int clamped) {
        BlockSpec.Mamba spec = w.spec();
        int heads = spec.heads();
        DeviceBuffer dt = k.scratch.floats("mamba.dt", (long) rows * heads);
        DeviceCopy.rows(k.stream, projected, width, width - heads, dt, heads, 0, rows, heads);
        float[] values = new float[rows * heads];
        float[] bias = new float[heads];
        dt.copyTo(values);
        w.dtBias().copyTo(bias);
        for (int t = 0; t < rows; t++) {
            for (int h = 0; h < heads; h++) {
                float value = softplus(values[t * heads + h] + bias[h]);
                values[t * heads + h] = t < clamped ? Math.min(Math.max(value, spec.dtMin()), spec.dtMax()) : value;
            }
        }
        dt.copyFrom(values);
        return dt;
    }

    /** torch's softplus: beta 1, linear above 20. */
    private static float softplus(float value) {
        return value > 20f ? value : (float) Math.log1p(Math.exp(value));
    }
}
