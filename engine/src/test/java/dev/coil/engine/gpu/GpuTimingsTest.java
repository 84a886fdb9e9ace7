package dev.coil.engine.gpu;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.blas.Cublas;
import dev.coil.engine.gpu.kernels.ConvertKernel;
import dev.coil.engine.gpu.kernels.RmsNormKernel;
import dev.coil.engine.gpu.kernels.SsmStateUpdateKernel;
import dev.coil.engine.load.DType;
import dev.coil.engine.ops.Matrix;
import dev.coil.engine.ops.SsmShape;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Rough speeds, printed for a sanity check against ../shared/reference/anchors.md (cuBLAS bf16
 * about 750-800 TFLOP/s, HBM about 3.0 TB/s, mamba_ssm's state update about 2.5 TB/s at batch 64).
 * Nothing here asserts a speed: each timing asserts only that its result was computed (spot values
 * against double-precision sums), so a fast wrong kernel cannot print a number.
 */
@GpuTest
class GpuTimingsTest {

    private static final int WARMUP = 3;
    private static final int REPEATS = 20;

    @Test
    void gemmBf16At4096Cubed() {
        int n = 4096;
        Random random = new Random(42);
        short[] wBits = new short[n * n];
        short[] xBits = new short[n * n];
        for (int i = 0; i < wBits.length; i++) {
            wBits[i] = Matrix.floatToBf16(random.nextFloat() * 2 - 1);
            xBits[i] = Matrix.floatToBf16(random.nextFloat() * 2 - 1);
        }
        CudaDevice device = GpuFixture.device();
        try (DeviceScope scope = GpuFixture.scope(); Cublas cublas = Cublas.create(device)) {
            DeviceBuffer w = scope.keep(device.allocate(2L * n * n));
            DeviceBuffer x = scope.keep(device.allocate(2L * n * n));
            w.copyFrom(MemorySegment.ofArray(wBits));
            x.copyFrom(MemorySegment.ofArray(xBits));
            DeviceBuffer out = scope.poisoned((long) n * n);
            CudaStream stream = scope.stream();
            float millis = time(scope, () -> cublas.gemmEx(stream, true, false, n, n, n, w, n, x, n, DType.BF16, out, n,
                    false));
            System.out.printf("[timing] cuBLAS gemm bf16 %d³ (f32 out): %.3f ms, %.0f TFLOP/s%n", n, millis,
                    2.0 * n * n * n / (millis * 1e-3) / 1e12);

            float[] result = scope.download(out, n * n);
            for (int probe = 0; probe < 16; probe++) {
                int t = random.nextInt(n);
                int row = random.nextInt(n);
                double sum = 0;
                double magnitude = 0;
                for (int k = 0; k < n; k++) {
                    double term = (double) Matrix.bf16ToFloat(xBits[t * n + k]) * Matrix.bf16ToFloat(wBits[row * n + k]);
                    sum += term;
                    magnitude += Math.abs(term);
                }
                assertThat(Math.abs(result[t * n + row] - sum)).as("out[%d, %d]", t, row)
                        .isLessThanOrEqualTo(1e-5 * magnitude);
            }
        }
    }

    /**
     * Host time of one cublasGemmEx call at the 300M shape's in_proj (3352 × 768), each after the
     * stream is idle (so no call waits for the launch queue): the same row count every call, then a
     * different one every call (cuBLAS picks a kernel for each new shape). Each twice, the second
     * pass after every kernel was loaded (cuBLAS loads them on first use). The products' values are
     * checked in gemmBf16At4096Cubed and GpuMatmulTest.
     */
    @Test
    void cublasHostTimePerCall() {
        int m = 3352;
        int k = 768;
        int most = 2048;
        CudaDevice device = GpuFixture.device();
        try (DeviceScope scope = GpuFixture.scope(); Cublas cublas = Cublas.create(device)) {
            DeviceBuffer w = scope.keep(device.allocate(2L * m * k));
            DeviceBuffer x = scope.keep(device.allocate(2L * most * k));
            w.fillAsync(0, scope.stream());
            x.fillAsync(0, scope.stream());
            DeviceBuffer out = scope.poisoned((long) most * m);
            CudaStream stream = scope.stream();
            Random random = new Random(5);
            for (int pass = 1; pass <= 2; pass++) {
                for (boolean newRows : new boolean[] {false, true}) {
                    long total = 0;
                    int calls = 100;
                    for (int call = 0; call < calls; call++) {
                        int n = newRows ? 129 + random.nextInt(most - 129) : 1000;
                        stream.synchronize();
                        long start = System.nanoTime();
                        cublas.gemmEx(stream, true, false, m, n, k, w, k, x, k, DType.BF16, out, m, false);
                        total += System.nanoTime() - start;
                    }
                    stream.synchronize();
                    System.out.printf("[timing] cublasGemmEx %d × %d, pass %d, %s: %.1f µs of host time a call (%d)%n",
                            m, k, pass, newRows ? "new rows each call" : "the same rows", total / 1e3 / calls, calls);
                }
            }
        }
    }

    @Test
    void rmsNormBandwidth() {
        int tokens = 8192;
        int dim = 4096;
        Random random = new Random(3);
        float[] x = Parity.uniform(random, tokens * dim, -2, 2);
        float[] weight = Parity.uniform(random, dim, 0.5, 1.5);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer input = scope.upload(x);
            DeviceBuffer deviceWeight = scope.upload(weight);
            DeviceBuffer out = scope.poisoned((long) tokens * dim);
            RmsNormKernel norm = new RmsNormKernel(GpuFixture.kernels());
            float millis = time(scope, () -> norm.launch(scope.stream(), input, tokens, dim, deviceWeight, 1e-5f, out));
            double bytes = 2.0 * 4 * tokens * dim;
            System.out.printf("[timing] rms_norm %d × %d f32: %.3f ms, %.0f GB/s (read + write)%n", tokens, dim, millis,
                    bytes / (millis * 1e-3) / 1e9);

            float[] result = scope.download(out, tokens * dim);
            int t = tokens - 1;
            double squares = 0;
            for (int i = 0; i < dim; i++) {
                squares += (double) x[t * dim + i] * x[t * dim + i];
            }
            double inverseRms = 1 / Math.sqrt(squares / dim + 1e-5);
            assertThat((double) result[t * dim + 7]).isCloseTo(weight[7] * x[t * dim + 7] * inverseRms,
                    org.assertj.core.api.Assertions.within(1e-5));
        }
    }

    @Test
    void ssmStateUpdateBandwidth() {
        // The anchors' shape: heads 64, head_dim 64, d_state 128, one group, batch 64.
        SsmShape shape = new SsmShape(64, 64, 1, 128);
        int batch = 64;
        Random random = new Random(4);
        int inner = shape.innerSize();
        int width = shape.stateSize();
        float[] pool = Parity.uniform(random, batch * shape.stateFloats(), -1, 1);
        int[] slots = new int[batch];
        Arrays.setAll(slots, b -> batch - 1 - b);
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer states = scope.upload(pool);
            DeviceBuffer x = scope.upload(Parity.uniform(random, batch * inner, -1, 1));
            DeviceBuffer dt = scope.upload(Parity.uniform(random, batch * shape.heads(), 0.001, 0.01));
            DeviceBuffer A = scope.upload(Parity.uniform(random, shape.heads(), -1, -0.5));
            DeviceBuffer B = scope.upload(Parity.uniform(random, batch * width, -1, 1));
            DeviceBuffer C = scope.upload(Parity.uniform(random, batch * width, -1, 1));
            DeviceBuffer D = scope.upload(Parity.uniform(random, shape.heads(), -1, 1));
            DeviceBuffer y = scope.poisoned((long) batch * inner);
            DeviceBuffer deviceSlots = scope.upload(slots);
            SsmStateUpdateKernel update = new SsmStateUpdateKernel(GpuFixture.kernels());
            SsmStateUpdateKernel.Step step = new SsmStateUpdateKernel.Step(dt, shape.heads(), null, false);
            float millis = time(scope, () -> update.launch(scope.stream(), shape, batch, x, inner, step, A, B, C, width,
                    D, states, deviceSlots, y));
            double bytes = 2.0 * 4 * batch * shape.stateFloats();
            System.out.printf("[timing] ssm_state_update batch %d, heads 64, head_dim 64, d_state 128: %.1f µs, "
                    + "%.0f GB/s of state read + write%n", batch, millis * 1e3, bytes / (millis * 1e-3) / 1e9);

            float[] result = scope.download(y, batch * inner);
            for (float value : result) {
                assertThat(value).isFinite();
            }
        }
    }

    /**
     * The state update by batch at the 300M shape (24 heads) and the anchors' (64 heads), each warp
     * taking 1, 4 or 8 rows of state. Sets of slots (256 MB in all, five times L2) are updated in
     * turn, so that each launch reads state that is not in L2 (as in a decode step, where every other
     * layer's state and weights pass through L2 between two updates of a layer).
     */
    @Test
    void ssmStateUpdateByBatchAndRowsPerWarp() {
        for (int heads : new int[] {24, 64}) {
            SsmShape shape = new SsmShape(heads, 64, 1, 128);
            for (int batch : new int[] {1, 2, 4, 8, 16, 32, 64}) {
                Random random = new Random(batch * 31L + heads);
                long setBytes = 4L * batch * shape.stateFloats();
                int sets = (int) Math.clamp((256L << 20) / setBytes, 2, 64);
                int inner = shape.innerSize();
                int width = shape.stateSize();
                StringBuilder line = new StringBuilder(String.format(
                        "[timing] ssm_state_update, %d heads × 64 × 128, batch %d (%.1f MB of state; default %d rows"
                                + " a warp):", heads, batch, 4.0 * batch * shape.stateFloats() / 1e6,
                        SsmStateUpdateKernel.rowsPerWarp(batch, shape)));
                try (DeviceScope scope = GpuFixture.scope()) {
                    DeviceBuffer states = scope.upload(
                            Parity.uniform(random, sets * batch * (int) shape.stateFloats(), -1, 1));
                    DeviceBuffer[] slotSets = new DeviceBuffer[sets];
                    for (int set = 0; set < sets; set++) {
                        int[] slots = new int[batch];
                        int first = set * batch;
                        Arrays.setAll(slots, b -> first + batch - 1 - b);
                        slotSets[set] = scope.upload(slots);
                    }
                    DeviceBuffer x = scope.upload(Parity.uniform(random, batch * inner, -1, 1));
                    DeviceBuffer dt = scope.upload(Parity.uniform(random, batch * heads, 0.001, 0.01));
                    DeviceBuffer A = scope.upload(Parity.uniform(random, heads, -1, -0.5));
                    DeviceBuffer B = scope.upload(Parity.uniform(random, batch * width, -1, 1));
                    DeviceBuffer C = scope.upload(Parity.uniform(random, batch * width, -1, 1));
                    DeviceBuffer D = scope.upload(Parity.uniform(random, heads, -1, 1));
                    DeviceBuffer y = scope.poisoned((long) batch * inner);
                    SsmStateUpdateKernel update = new SsmStateUpdateKernel(GpuFixture.kernels());
                    SsmStateUpdateKernel.Step step = new SsmStateUpdateKernel.Step(dt, heads, null, false);
                    for (int rows : SsmStateUpdateKernel.ROWS_PER_WARP) {
                        float millis = time(scope, () -> {
                            for (DeviceBuffer slots : slotSets) {
                                update.launch(scope.stream(), rows, shape, batch, x, inner, step, A, B, C, width, D,
                                        states, slots, y, null, 0);
                            }
                        }) / sets;
                        double bytes = 2.0 * 4 * batch * shape.stateFloats();
                        line.append(String.format(" %d rows %.1f µs (%.0f GB/s);", rows, millis * 1e3,
                                bytes / (millis * 1e-3) / 1e9));
                        for (float value : scope.download(y, batch * inner)) {
                            assertThat(value).isFinite();
                        }
                    }
                }
                System.out.println(line);
            }
        }
    }

    @Test
    void launchOverhead() {
        int launches = 2000;
        try (DeviceScope scope = GpuFixture.scope()) {
            DeviceBuffer values = scope.upload(Parity.uniform(new Random(5), 1024, 1, 2));
            DeviceBuffer out = scope.poisoned(2048);
            ConvertKernel convert = new ConvertKernel(GpuFixture.kernels());
            for (int i = 0; i < 100; i++) {
                convert.launch(scope.stream(), values, 1024, DType.BF16, out);
            }
            scope.stream().synchronize();
            long start = System.nanoTime();
            for (int i = 0; i < launches; i++) {
                convert.launch(scope.stream(), values, 1024, DType.BF16, out);
            }
            scope.stream().synchronize();
            double micros = (System.nanoTime() - start) / 1e3 / launches;
            System.out.printf("[timing] back-to-back launches of a tiny kernel from Java: %.2f µs each%n", micros);
            short[] converted = new short[1024];
            out.copyTo(converted);
            float[] input = new float[1024];
            values.copyTo(input);
            assertThat(Matrix.bf16ToFloat(converted[1023])).isEqualTo(Matrix.bf16ToFloat(Matrix.floatToBf16(input[1023])));
        }
    }

    /** Median device time of one run of {@code work}, in milliseconds, after warm-up. */
    private static float time(DeviceScope scope, Runnable work) {
        CudaDevice device = GpuFixture.device();
        for (int i = 0; i < WARMUP; i++) {
            work.run();
        }
        float[] samples = new float[REPEATS];
        try (CudaEvent start = device.newEvent(); CudaEvent end = device.newEvent()) {
            for (int i = 0; i < REPEATS; i++) {
                start.record(scope.stream());
                work.run();
                end.record(scope.stream());
                samples[i] = end.millisSince(start);
            }
        }
        Arrays.sort(samples);
        return samples[REPEATS / 2];
    }
}
