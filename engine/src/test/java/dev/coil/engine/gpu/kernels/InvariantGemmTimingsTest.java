package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.TestMatrices;
import dev.coil.engine.gpu.blas.Cublas;
import dev.coil.engine.gpu.blas.GpuMatmul;
import dev.coil.engine.load.DType;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Prints the batch-invariant product's time per launch through each of its kernels at the 300M
 * shape's products (a prompt step of 8192 rows, decode steps of 16 to 128), beside cuBLAS on the
 * same bf16 operand. Nothing is asserted on time; every kernel's result is compared bit for bit
 * with the others' and closely with cuBLAS's, so a fast wrong kernel cannot print a number.
 */
@GpuTest
class InvariantGemmTimingsTest {

    private static final int LAUNCHES = 20;

    @Test
    void printsMicrosecondsPerProductThroughEachKernel() {
        // {outputs, cols}: in_proj, out_proj, gate and up, down, attention's output.
        int[][] shapes = {{3352, 768}, {768, 1536}, {4096, 768}, {768, 2048}, {768, 768}};
        CudaDevice device = GpuFixture.device();
        Random random = new Random(8);
        InvariantGemmKernel gemm = new InvariantGemmKernel(GpuFixture.kernels());
        Cublas cublas = Cublas.create(device);
        System.setProperty(GemvKernel.PROPERTY, "false"); // cuBLAS at every row count
        GpuMatmul blasOnly;
        try {
            blasOnly = new GpuMatmul(device, cublas);
        } finally {
            System.clearProperty(GemvKernel.PROPERTY);
        }
        try (DeviceScope scope = GpuFixture.scope(); cublas; GpuMatmul blas = blasOnly) {
            for (int[] shape : shapes) {
                int n = shape[0];
                int k = shape[1];
                DeviceMatrix w = scope.keep(DeviceMatrix.upload(device,
                        TestMatrices.of(Parity.uniform(random, n * k, -1, 1), n, k, DType.BF16)));
                for (int rows : new int[] {16, 32, 64, 128, 8192}) {
                    DeviceBuffer x = scope.upload(Parity.uniform(random, rows * k, -2, 2));
                    DeviceBuffer x16 = scope.poisoned(Math.ceilDiv(rows * k, 2));
                    new ConvertKernel(GpuFixture.kernels()).launch(scope.stream(), x, (long) rows * k, DType.BF16, x16);
                    DeviceBuffer out = scope.poisoned((long) rows * n);
                    int count = rows * n;
                    double blasMicros = perLaunch(scope, () -> blas.matmulPrepared(scope.stream(), x16, rows, w, out));
                    float[] blasOut = scope.download(out, count);
                    StringBuilder line = new StringBuilder(String.format(
                            "[invariant-gemm] %s: %d rows × bf16 [%d, %d]: cuBLAS %.2f µs (%.0f TFLOP/s)",
                            device.name(), rows, n, k, blasMicros, 2.0 * rows * n * k / blasMicros / 1e6));
                    float[] first = null;
                    for (InvariantGemmKernel.Path path : InvariantGemmKernel.Path.values()) {
                        if ((path == InvariantGemmKernel.Path.FEW_ROWS || path == InvariantGemmKernel.Path.WIDE)
                                && rows > InvariantGemmKernel.FEW_ROWS) {
                            continue;
                        }
                        out.fill(DeviceScope.POISON);
                        double micros = perLaunch(scope,
                                () -> gemm.project(scope.stream(), x16, DType.BF16, rows, w, out, path));
                        float[] result = scope.download(out, count);
                        Parity.assertClose(path + " vs cuBLAS", result, blasOut, 1e-5);
                        if (first == null) {
                            first = result;
                        } else if (!Arrays.equals(first, result)) {
                            throw new AssertionError(path + " differs from the first kernel's bits");
                        }
                        line.append(String.format(", %s %.2f µs (%.0f TFLOP/s)", path.name().toLowerCase(), micros,
                                2.0 * rows * n * k / micros / 1e6));
                    }
                    System.out.println(line);
                }
            }
        }
    }

    /** Median over 5 samples of the time per launch, µs, of {@link #LAUNCHES} launches queued back to back. */
    private static double perLaunch(DeviceScope scope, Runnable launch) {
        CudaDevice device = GpuFixture.device();
        launch.run();
        double[] samples = new double[5];
        try (CudaEvent start = device.newEvent(); CudaEvent end = device.newEvent()) {
            for (int s = 0; s < samples.length; s++) {
                start.record(scope.stream());
                for (int i = 0; i < LAUNCHES; i++) {
                    launch.run();
                }
                end.record(scope.stream());
                samples[s] = end.millisSince(start) * 1e3 / LAUNCHES;
            }
        }
        Arrays.sort(samples);
        return samples[samples.length / 2];
    }
}
