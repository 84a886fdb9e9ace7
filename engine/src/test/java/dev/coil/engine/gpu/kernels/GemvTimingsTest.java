package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.DecodeGraphs;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.DeviceScope;
import dev.coil.engine.gpu.GpuFixture;
import dev.coil.engine.gpu.GpuTest;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.Parity;
import dev.coil.engine.gpu.TestMatrices;
import dev.coil.engine.gpu.blas.Cublas;
import dev.coil.engine.gpu.blas.GpuMatmul;
import dev.coil.engine.load.DType;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Prints the few-rows product's time per launch at the 300M shape's decode products (1 to 8 rows),
 * beside cuBLAS on the same bf16 operand, as a chain of launches queued back to back (a decode
 * step's situation): with programmatic launch, and without. Nothing is asserted on time; each
 * configuration's result is compared with cuBLAS's, so a fast wrong kernel cannot print a number.
 */
@GpuTest
class GemvTimingsTest {

    private static final int CHAIN = 50;

    @Test
    void printsMicrosecondsPerProductAtTheDecodeShapes() {
        int[][] shapes = {{3352, 768}, {768, 1536}, {4096, 768}, {768, 2048}, {49160, 768}};
        CudaDevice device = GpuFixture.device();
        Random random = new Random(5);
        Cublas cublas = Cublas.create(device);
        GpuMatmul blasOnly = cublasOnly(device, cublas);
        GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
        try (DeviceScope scope = GpuFixture.scope(); cublas; blasOnly) {
            cublas.useWorkspace(scope.keep(device.allocate(32L << 20))); // captured products must not allocate
            for (int[] shape : shapes) {
                int n = shape[0];
                int k = shape[1];
                DeviceMatrix w = scope.keep(DeviceMatrix.upload(device,
                        TestMatrices.of(Parity.uniform(random, n * k, -1, 1), n, k, DType.BF16)));
                for (int rows : new int[] {1, 2, 4, 8}) {
                    DeviceBuffer x = scope.upload(Parity.uniform(random, rows * k, -2, 2));
                    DeviceBuffer x16 = scope.poisoned(Math.ceilDiv(rows * k, 2));
                    new ConvertKernel(GpuFixture.kernels()).launch(scope.stream(), x, (long) rows * k, DType.BF16, x16);
                    DeviceBuffer blasOut = scope.poisoned((long) rows * n);
                    DeviceBuffer gemvOut = scope.poisoned((long) rows * n);
                    List<GemvKernel.Product> product = List.of(new GemvKernel.Product(w, gemvOut));
                    double blas = perLaunch(scope, () -> blasOnly.matmulPrepared(scope.stream(), x16, rows, w, blasOut));
                    double programmatic = perLaunch(scope,
                            () -> gemv.project(scope.stream(), x16, DType.BF16, k, rows, product));
                    Parity.assertClose("gemv vs cuBLAS", scope.download(gemvOut, rows * n),
                            scope.download(blasOut, rows * n), 1e-5);
                    System.setProperty(Kernel.PROGRAMMATIC_PROPERTY, "false");
                    double plain;
                    gemvOut.fill(DeviceScope.POISON); // so that the plain launches' output is checked too
                    try {
                        plain = perLaunch(scope, () -> gemv.project(scope.stream(), x16, DType.BF16, k, rows, product));
                    } finally {
                        System.clearProperty(Kernel.PROGRAMMATIC_PROPERTY);
                    }
                    Parity.assertClose("gemv without programmatic launch vs cuBLAS", scope.download(gemvOut, rows * n),
                            scope.download(blasOut, rows * n), 1e-5);
                    double bytes = 2.0 * n * k;
                    System.out.printf("[gemv] %s: %d rows × bf16 [%d, %d] (%.2f MB): cuBLAS %.2f µs (%.0f GB/s), "
                            + "gemv %.2f µs (%.0f GB/s), without programmatic launch %.2f µs (%.0f GB/s)%n",
                            device.name(), rows, n, k, bytes / 1e6, blas, bytes / blas / 1e3, programmatic,
                            bytes / programmatic / 1e3, plain, bytes / plain / 1e3);
                }
            }
        }
    }

    @Test
    void printsWhatEachFusedOperandAddsAtOneRow() {
        CudaDevice device = GpuFixture.device();
        Random random = new Random(6);
        GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix inProjection = scope.keep(DeviceMatrix.upload(device,
                    TestMatrices.of(Parity.uniform(random, 3352 * 768, -1, 1), 3352, 768, DType.BF16)));
            DeviceMatrix outProjection = scope.keep(DeviceMatrix.upload(device,
                    TestMatrices.of(Parity.uniform(random, 768 * 1536, -1, 1), 768, 1536, DType.BF16)));
            DeviceMatrix down = scope.keep(DeviceMatrix.upload(device,
                    TestMatrices.of(Parity.uniform(random, 768 * 2048, -1, 1), 768, 2048, DType.BF16)));
            DeviceBuffer h = scope.upload(Parity.uniform(random, 768, -2, 2));
            DeviceBuffer update = scope.upload(Parity.uniform(random, 768, -2, 2));
            DeviceBuffer hOut = scope.poisoned(768);
            DeviceBuffer ones = scope.upload(Parity.uniform(random, 2048, 0.5, 1.5));
            DeviceBuffer wide = scope.upload(Parity.uniform(random, 3352, -2, 2));
            DeviceBuffer wide16 = scope.poisoned(3352);
            new ConvertKernel(GpuFixture.kernels()).launch(scope.stream(), wide, 3352, DType.BF16, wide16);
            DeviceBuffer projected = scope.poisoned(3352);
            DeviceBuffer out = scope.poisoned(768);
            DeviceBuffer convolved = scope.poisoned(1792);
            DeviceBuffer states = scope.upload(new float[4 * 3 * 1792]);
            DeviceBuffer slots = scope.upload(new int[] {1});
            DeviceBuffer convWeight = scope.upload(Parity.uniform(random, 1792 * 4, -1, 1));
            GemvKernel.Product inProduct = new GemvKernel.Product(inProjection, projected);
            GemvKernel.ResidualNorm norm = new GemvKernel.ResidualNorm(h, update, 0.2f, hOut, ones, 1e-5f);
            String card = device.name();
            double plainIn = perLaunch(scope, () -> gemv.project(scope.stream(), wide16, DType.BF16, 768, 1,
                    List.of(inProduct)));
            double normedIn = perLaunch(scope, () -> gemv.projectResidualNorm(scope.stream(), norm, 1,
                    List.of(inProduct)));
            double convIn = perLaunch(scope, () -> gemv.projectResidualNorm(scope.stream(), norm, 1,
                    List.of(inProduct), new GemvKernel.Conv(convWeight, null, 4, states, slots, convolved, 1536,
                            1792)));
            System.out.printf("[gemv] %s: in_proj [3352, 768], 1 row: bf16 operand %.2f µs, residual + norm %.2f µs,"
                    + " residual + norm + conv update %.2f µs%n", card, plainIn, normedIn, convIn);
            GemvKernel.Product outProduct = new GemvKernel.Product(outProjection, out);
            double plainOut = perLaunch(scope, () -> gemv.project(scope.stream(), wide16, DType.BF16, 1536, 1,
                    List.of(outProduct)));
            double gatedOut = perLaunch(scope, () -> gemv.projectGatedNorm(scope.stream(), wide, 1536, wide, 3352,
                    new GemvKernel.Norm(ones, 1536, 1e-5f), 1, outProduct));
            System.out.printf("[gemv] %s: out_proj [768, 1536], 1 row: bf16 operand %.2f µs, gated norm %.2f µs%n",
                    card, plainOut, gatedOut);
            GemvKernel.Product downProduct = new GemvKernel.Product(down, out);
            double plainDown = perLaunch(scope, () -> gemv.project(scope.stream(), wide16, DType.BF16, 2048, 1,
                    List.of(downProduct)));
            double siluDown = perLaunch(scope, () -> gemv.projectSiluProduct(scope.stream(), wide, 2048,
                    wide.floatSlice(1024, 2048), 2048, 1, downProduct));
            System.out.printf("[gemv] %s: down [768, 2048], 1 row: bf16 operand %.2f µs, silu(gate) · up %.2f µs%n",
                    card, plainDown, siluDown);
        }
    }

    /**
     * The one-row product at the widths of a Nemotron-3-Nano-shaped block (hidden 2688), whose
     * matrices are 11-55 MB, beside cuBLAS on the same bf16 operand and the time 4.8 TB/s (the H200's
     * bandwidth) would take: each launch of a chain reads the next of three copies of its matrix, so
     * that the weights come from memory rather than L2, as in a decode step.
     */
    @Test
    void printsMicrosecondsPerProductAtNemotronNanoWidths() {
        int[][] shapes = {{10304, 2688}, {2688, 4096}, {3712, 2688}, {2688, 3712}, {4608, 2688}, {2048, 2688}};
        String[] names = {"in_proj", "out_proj", "shared up", "shared down", "q/k/v", "a quarter of in_proj"};
        CudaDevice device = GpuFixture.device();
        Random random = new Random(7);
        Cublas cublas = Cublas.create(device);
        GpuMatmul blasOnly = cublasOnly(device, cublas);
        GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
        try (DeviceScope scope = GpuFixture.scope(); cublas; blasOnly) {
            cublas.useWorkspace(scope.keep(device.allocate(32L << 20)));
            for (int s = 0; s < shapes.length; s++) {
                int n = shapes[s][0];
                int k = shapes[s][1];
                float[] values = Parity.uniform(random, n * k, -1, 1);
                DeviceMatrix[] copies = new DeviceMatrix[3];
                for (int c = 0; c < copies.length; c++) {
                    copies[c] = scope.keep(DeviceMatrix.upload(device, TestMatrices.of(values, n, k, DType.BF16)));
                }
                DeviceBuffer x = scope.upload(Parity.uniform(random, k, -2, 2));
                DeviceBuffer x16 = scope.poisoned(Math.ceilDiv(k, 2));
                new ConvertKernel(GpuFixture.kernels()).launch(scope.stream(), x, k, DType.BF16, x16);
                DeviceBuffer blasOut = scope.poisoned(n);
                DeviceBuffer gemvOut = scope.poisoned(n);
                int[] next = {0};
                double blas = perLaunch(scope, () -> blasOnly.matmulPrepared(scope.stream(), x16, 1,
                        copies[next[0]++ % copies.length], blasOut));
                double ours = perLaunch(scope, () -> gemv.project(scope.stream(), x16, DType.BF16, k, 1,
                        List.of(new GemvKernel.Product(copies[next[0]++ % copies.length], gemvOut))));
                Parity.assertClose("gemv vs cuBLAS", scope.download(gemvOut, n), scope.download(blasOut, n), 1e-5);
                double bytes = 2.0 * n * k;
                System.out.printf("[gemv-nano] %s: %s, 1 row × bf16 [%d, %d] (%.1f MB): gemv %.2f µs (%.0f GB/s),"
                        + " cuBLAS %.2f µs (%.0f GB/s), 4.8 TB/s %.2f µs%n", device.name(), names[s], n, k,
                        bytes / 1e6, ours, bytes / ours / 1e3, blas, bytes / blas / 1e3, bytes / 4.8e6);
            }
        }
    }

    /**
     * What each fused operand adds at a Nemotron-3-Nano-shaped block's widths (hidden 2688, Mamba-2's
     * 4096 inner channels in 8 groups): in_proj with a bf16 operand, with the residual update and the
     * norm, and with the conv update too; out_proj with a bf16 operand and with the gated norm of 8
     * groups. Each launch of a chain reads the next of three copies of its matrix (from memory, not L2).
     */
    @Test
    void printsWhatEachFusedOperandAddsAtNemotronNanoWidths() {
        CudaDevice device = GpuFixture.device();
        Random random = new Random(8);
        int hidden = 2688;
        int inner = 4096;
        int inWidth = 10304;
        int channels = 6144;
        GemvKernel gemv = new GemvKernel(GpuFixture.kernels(), GemvKernel.KERNEL_ROWS);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceMatrix[] in = new DeviceMatrix[3];
            DeviceMatrix[] out = new DeviceMatrix[3];
            float[] inValues = Parity.uniform(random, inWidth * hidden, -1, 1);
            float[] outValues = Parity.uniform(random, hidden * inner, -1, 1);
            for (int c = 0; c < 3; c++) {
                in[c] = scope.keep(DeviceMatrix.upload(device, TestMatrices.of(inValues, inWidth, hidden, DType.BF16)));
                out[c] = scope.keep(DeviceMatrix.upload(device, TestMatrices.of(outValues, hidden, inner, DType.BF16)));
            }
            DeviceBuffer h = scope.upload(Parity.uniform(random, hidden, -2, 2));
            DeviceBuffer update = scope.upload(Parity.uniform(random, hidden, -2, 2));
            DeviceBuffer hOut = scope.poisoned(hidden);
            DeviceBuffer ones = scope.upload(Parity.uniform(random, inner, 0.5, 1.5));
            DeviceBuffer y = scope.upload(Parity.uniform(random, inner, -2, 2));
            DeviceBuffer z = scope.upload(Parity.uniform(random, inner, -2, 2));
            DeviceBuffer wide16 = scope.poisoned(inner / 2);
            new ConvertKernel(GpuFixture.kernels()).launch(scope.stream(), y, inner, DType.BF16, wide16);
            DeviceBuffer projected = scope.poisoned(inWidth);
            DeviceBuffer result = scope.poisoned(hidden);
            DeviceBuffer convolved = scope.poisoned(channels);
            DeviceBuffer states = scope.upload(new float[4 * 3 * channels]);
            DeviceBuffer slots = scope.upload(new int[] {1});
            DeviceBuffer convWeight = scope.upload(Parity.uniform(random, channels * 4, -1, 1));
            GemvKernel.ResidualNorm norm = new GemvKernel.ResidualNorm(h, update, 0.2f, hOut, ones, 1e-5f);
            int[] next = {0};
            double plainIn = perLaunch(scope, () -> gemv.project(scope.stream(), wide16, DType.BF16, hidden, 1,
                    List.of(new GemvKernel.Product(in[next[0]++ % 3], projected))));
            double normedIn = perLaunch(scope, () -> gemv.projectResidualNorm(scope.stream(), norm, 1,
                    List.of(new GemvKernel.Product(in[next[0]++ % 3], projected))));
            double convIn = perLaunch(scope, () -> gemv.projectResidualNorm(scope.stream(), norm, 1,
                    List.of(new GemvKernel.Product(in[next[0]++ % 3], projected)), new GemvKernel.Conv(convWeight,
                            null, 4, states, slots, convolved, inner, channels)));
            double plainOut = perLaunch(scope, () -> gemv.project(scope.stream(), wide16, DType.BF16, inner, 1,
                    List.of(new GemvKernel.Product(out[next[0]++ % 3], result))));
            double gatedOut = perLaunch(scope, () -> gemv.projectGatedNorm(scope.stream(), y, inner, z, inner,
                    new GemvKernel.Norm(ones, 512, 1e-5f), 1, new GemvKernel.Product(out[next[0]++ % 3], result)));
            System.out.printf("[gemv-nano] %s: in_proj [%d, %d], 1 row: bf16 operand %.2f µs, residual + norm %.2f µs,"
                    + " residual + norm + conv update %.2f µs; out_proj [%d, %d]: bf16 operand %.2f µs, gated norm of 8"
                    + " groups %.2f µs%n", device.name(), inWidth, hidden, plainIn, normedIn, convIn, hidden, inner,
                    plainOut, gatedOut);
        }
    }

    /** A matmul that sends every product to cuBLAS (the few-rows kernels switched off while it is made). */
    private static GpuMatmul cublasOnly(CudaDevice device, Cublas cublas) {
        System.setProperty(GemvKernel.PROPERTY, "false");
        try {
            return new GpuMatmul(device, cublas);
        } finally {
            System.clearProperty(GemvKernel.PROPERTY);
        }
    }

    /**
     * Median over 5 replays of the time per launch, µs, of {@link #CHAIN} launches captured back to
     * back in one CUDA graph (as a decode step replays them: no host launch cost in the figure).
     */
    private static double perLaunch(DeviceScope scope, Runnable launch) {
        CudaDevice device = GpuFixture.device();
        launch.run();
        double[] samples = new double[5];
        try (DecodeGraphs graphs = new DecodeGraphs(); CudaEvent start = device.newEvent();
                CudaEvent end = device.newEvent()) {
            DecodeGraphs.Key key = new DecodeGraphs.Key(CHAIN, 0);
            graphs.replay(key, 0, scope.stream()); // sets the allocation count the graph is valid for
            graphs.capture(key, scope.stream(), () -> {
                for (int i = 0; i < CHAIN; i++) {
                    launch.run();
                }
            });
            graphs.replay(key, 0, scope.stream());
            for (int s = 0; s < samples.length; s++) {
                start.record(scope.stream());
                graphs.replay(key, 0, scope.stream());
                end.record(scope.stream());
                samples[s] = end.millisSince(start) * 1e3 / CHAIN;
            }
        }
        java.util.Arrays.sort(samples);
        return samples[samples.length / 2];
    }
}
