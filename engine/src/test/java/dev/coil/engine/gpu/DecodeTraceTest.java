package dev.coil.engine.gpu;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.kernels.GemvKernel;
import dev.coil.engine.load.DType;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Tracing on the device: one record a waiting kernel while on, in launch order, with its grid; none while off. */
@GpuTest
class DecodeTraceTest {

    @Test
    void recordsEachWaitingKernelWhileOnAndNoneWhileOff() {
        Random random = new Random(3);
        try (DeviceScope scope = GpuFixture.scope()) {
            GemvKernel gemv = new GemvKernel(GpuFixture.kernels());
            DecodeTrace trace = new DecodeTrace(GpuFixture.kernels());
            DeviceMatrix small = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(Parity.uniform(random, 40 * 64, -1, 1), 40, 64, DType.BF16)));
            DeviceMatrix tall = scope.keep(DeviceMatrix.upload(GpuFixture.device(),
                    TestMatrices.of(Parity.uniform(random, 3000 * 64, -1, 1), 3000, 64, DType.BF16)));
            DeviceBuffer x = scope.upload(Parity.uniform(random, 64, -1, 1));
            DeviceBuffer out = scope.poisoned(3000);
            gemv.project(scope.stream(), x, DType.F32, 64, 1, List.of(new GemvKernel.Product(small, out)));
            trace.start(scope.stream());
            gemv.project(scope.stream(), x, DType.F32, 64, 1, List.of(new GemvKernel.Product(small, out)));
            gemv.project(scope.stream(), x, DType.F32, 64, 1, List.of(new GemvKernel.Product(tall, out)));
            trace.stop(scope.stream());
            gemv.project(scope.stream(), x, DType.F32, 64, 1, List.of(new GemvKernel.Product(small, out)));
            scope.stream().synchronize();
            List<DecodeTrace.Wait> waits = trace.read();
            assertThat(waits).hasSize(2);
            // 40 columns: 5 blocks of 8; 3000 columns: the two-columns-a-warp entry, 188 blocks of 16.
            assertThat(waits.get(0).shape()).isEqualTo("(5)×256");
            assertThat(waits.get(1).shape()).isEqualTo("(188)×256");
            assertThat(waits.get(1).nanos()).isGreaterThanOrEqualTo(waits.get(0).nanos());
        }
    }
}
