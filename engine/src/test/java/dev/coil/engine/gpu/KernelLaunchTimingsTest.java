package dev.coil.engine.gpu;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.gpu.kernels.ArgmaxKernel;
import org.junit.jupiter.api.Test;

/**
 * The host's time a kernel launch, through {@link DriverLaunch} and through JCuda's cuLaunchKernel
 * ({@code -Dcoil.cuda.driverLaunch=false}), printed. A prefill step of many sequences is hundreds
 * to thousands of launches, so this is host time before its first token. Each path's launches
 * are checked to have run (a division by 2 through that path), never their speed.
 */
@GpuTest
class KernelLaunchTimingsTest {

    private static final int LAUNCHES = 200;
    private static final int PASSES = 50;

    @Test
    void printsTheHostsMicrosecondsALaunch() {
        try (DeviceScope scope = GpuFixture.scope()) {
            ArgmaxKernel kernels = new ArgmaxKernel(GpuFixture.kernels());
            float[] ones = new float[64];
            java.util.Arrays.fill(ones, 1f);
            DeviceBuffer values = scope.upload(ones);
            for (String driver : new String[] {"true", "false", "true", "false"}) {
                System.setProperty(Kernel.DRIVER_LAUNCH_PROPERTY, driver);
                long best = Long.MAX_VALUE;
                try {
                    for (int pass = 0; pass < PASSES; pass++) {
                        scope.stream().synchronize();
                        long start = System.nanoTime();
                        for (int i = 0; i < LAUNCHES; i++) {
                            kernels.divide(scope.stream(), values, 64, 1f);
                        }
                        best = Math.min(best, System.nanoTime() - start);
                    }
                    // The timed launches divide by 1; one by 2 through the same path shows that path runs.
                    values.copyFrom(ones);
                    kernels.divide(scope.stream(), values, 64, 2f);
                    assertThat(scope.download(values, 64)).as("a launch through %s", driver).containsOnly(0.5f);
                    values.copyFrom(ones);
                } finally {
                    System.clearProperty(Kernel.DRIVER_LAUNCH_PROPERTY);
                }
                scope.stream().synchronize();
                System.out.printf("[gpu-launch] %s: %.2f µs a launch on the host (best of %d passes of %d)%n",
                        driver.equals("true") ? "cuLaunchKernelEx through FFM" : "JCuda cuLaunchKernel",
                        best / 1e3 / LAUNCHES, PASSES, LAUNCHES);
            }
        }
    }
}
