package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.ops.Matrix;
import java.lang.foreign.MemorySegment;
import java.util.Random;

/** Random bf16 attention operands: the bits for the device, their f32 values for the references. */
final class AttentionInputs {

    private AttentionInputs() {}

    /** n values uniform in [-amplitude, amplitude), rounded to bf16: bits[i] holds values[i] exactly. */
    record Bf16(short[] bits, float[] values) {

        static Bf16 uniform(Random random, int n, double amplitude) {
            short[] bits = new short[n];
            float[] values = new float[n];
            for (int i = 0; i < n; i++) {
                bits[i] = Matrix.floatToBf16((float) ((random.nextDouble() * 2 - 1) * amplitude));
                values[i] = Matrix.bf16ToFloat(bits[i]);
            }
            return new Bf16(bits, values);
        }

        DeviceBuffer upload(DeviceScope scope) {
            return AttentionInputs.upload(scope, bits);
        }
    }

    static DeviceBuffer upload(DeviceScope scope, short[] bits) {
        DeviceBuffer buffer = scope.keep(GpuFixture.device().allocate(2L * bits.length));
        buffer.copyFrom(MemorySegment.ofArray(bits));
        return buffer;
    }

    /** ‖actual − expected‖ / ‖expected‖ must stay within {@code tolerance}. */
    static void assertRelativeNorm(String what, float[] actual, float[] expected, double tolerance) {
        double errors = 0;
        double squares = 0;
        for (int i = 0; i < expected.length; i++) {
            double error = (double) actual[i] - expected[i];
            errors += error * error;
            squares += (double) expected[i] * expected[i];
        }
        double relative = Math.sqrt(errors / squares);
        if (!(relative <= tolerance)) {
            throw new AssertionError(String.format("%s: relative norm error %.3g over the allowed %.3g", what,
                    relative, tolerance));
        }
    }
}
