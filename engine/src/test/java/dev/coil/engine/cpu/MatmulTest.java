package dev.coil.engine.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ref.LinearRef;
import java.util.Random;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class MatmulTest {

    private static final int[] SIZES = {1, 3, 17, 63, 129, 383};
    private static final int[] TOKENS = {1, 2, 5, 7, 16, 17, 33};
    /** f32 accumulation error allowed, relative to Σ_k |x[t, k] · w[n, k]|. */
    private static final double RELATIVE = 1e-5;

    private final CpuOps cpu = new CpuOps(new Parallel(3));

    @ParameterizedTest
    @EnumSource(DType.class)
    void referenceComputesHandExample(DType dtype) {
        // Small integers and halves are exact in every dtype.
        Matrix w = LinearTestSupport.matrix(new float[] {1, 2, 3, 4, 5, 6}, 2, 3, dtype, 0, false);
        float[] x = {1, 0, -1, 2, 1, 0.5f};
        float[] out = new float[4];

        LinearRef.matmul(x, 2, w, out);

        assertThat(out).containsExactly(-2f, -2f, 5.5f, 16f);
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void matchesReferenceOnOddShapes(DType dtype) {
        Random random = new Random(17 + dtype.ordinal());
        int layout = 0;
        for (int rows : SIZES) {
            for (int cols : SIZES) {
                for (int tokens : TOKENS) {
                    layout++;
                    float[] values = LinearTestSupport.uniform(random, rows * cols, -1, 1);
                    Matrix w = LinearTestSupport.matrix(values, rows, cols, dtype, layout % 3, layout % 2 == 0);
                    float[] x = LinearTestSupport.uniform(random, tokens * cols, -2, 2);
                    compare(x, tokens, w, "[" + rows + " x " + cols + "] " + dtype + ", " + tokens + " tokens");
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void matchesReferenceOnManyRowBlocksAndPieces(DType dtype) {
        Random random = new Random(5 + dtype.ordinal());
        int rows = 1001;
        int cols = 515;
        Matrix w = LinearTestSupport.matrix(LinearTestSupport.uniform(random, rows * cols, -1, 1), rows, cols, dtype, 1,
                true);
        for (int tokens : new int[] {1, 11}) {
            compare(LinearTestSupport.uniform(random, tokens * cols, -1, 1), tokens, w, "large " + dtype + ", " + tokens);
        }
    }

    @Test
    void f32WeightsOnAFloatArrayMatchReference() {
        Random random = new Random(3);
        int rows = 70;
        int cols = 45;
        Matrix w = Matrix.ofFloats(LinearTestSupport.uniform(random, rows * cols, -1, 1), rows, cols);
        for (int tokens : TOKENS) {
            compare(LinearTestSupport.uniform(random, tokens * cols, -1, 1), tokens, w, "heap f32, " + tokens);
        }
    }

    /** With x one-hot at column k every output is exactly w[n, k]: widening loses nothing, subnormals included. */
    @ParameterizedTest
    @EnumSource(DType.class)
    void widensEveryStoredValueExactly(DType dtype) {
        int rows = 6;
        int cols = 37;
        float[] values = new float[rows * cols];
        Random random = new Random(11);
        for (int i = 0; i < values.length; i++) {
            float magnitude = switch (i % 4) {
                case 0 -> random.nextFloat();
                case 1 -> 1e-6f * random.nextFloat(); // f16 subnormal range
                case 2 -> 1e-39f * (1 + random.nextFloat()); // f32 / bf16 subnormal range
                default -> 1000 * random.nextFloat();
            };
            values[i] = i % 3 == 0 ? -magnitude : magnitude;
        }
        Matrix w = LinearTestSupport.matrix(values, rows, cols, dtype, 1, true);
        for (int tokens : new int[] {1, 4}) {
            for (int k = 0; k < cols; k++) {
                float[] x = new float[tokens * cols];
                for (int t = 0; t < tokens; t++) {
                    x[t * cols + k] = 1;
                }
                float[] out = new float[tokens * rows];
                cpu.matmul(x, tokens, w, out);
                for (int t = 0; t < tokens; t++) {
                    for (int n = 0; n < rows; n++) {
                        assertThat(out[t * rows + n]).as("%s row %d col %d token %d", dtype, n, k, t)
                                .isEqualTo(w.get(n, k));
                    }
                }
            }
        }
    }

    private void compare(float[] x, int tokens, Matrix w, String what) {
        int rows = w.rows();
        int cols = w.cols();
        float[] expected = new float[tokens * rows];
        LinearRef.matmul(x, tokens, w, expected);
        float[] actual = new float[tokens * rows];
        Arrays.fill(actual, Float.NaN);
        cpu.matmul(x, tokens, w, actual);
        float[] widened = w.toFloatArray();
        double[] scale = new double[tokens * rows];
        for (int t = 0; t < tokens; t++) {
            for (int n = 0; n < rows; n++) {
                double magnitude = Float.MIN_NORMAL;
                for (int k = 0; k < cols; k++) {
                    magnitude += Math.abs((double) x[t * cols + k] * widened[n * cols + k]);
                }
                scale[t * rows + n] = magnitude;
            }
        }
        LinearTestSupport.assertClose(actual, expected, scale, RELATIVE, what);
    }
}
