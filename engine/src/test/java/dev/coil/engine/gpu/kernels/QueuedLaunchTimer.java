package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaDevice;
import dev.coil.engine.gpu.CudaEvent;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceScope;
import java.util.Arrays;

/**
 * Times a launch on the GPU alone: each sample queues a few large fills of a 1 GiB buffer first, so
 * that the GPU is still busy with them while the host queues the timed launches back to back, and
 * what Java spends on a launch does not leave the GPU idle between them.
 */
final class QueuedLaunchTimer {

    private static final int SAMPLES = 5;

    private final CudaDevice device;
    private final DeviceScope scope;
    private final DeviceBuffer busy;

    QueuedLaunchTimer(CudaDevice device, DeviceScope scope) {
        this.device = device;
        this.scope = scope;
        this.busy = scope.keep(device.allocate(1L << 30));
    }

    /** The median over 5 samples of the ms a launch, each sample {@code launches} launches in a row. */
    float millisPerLaunch(int launches, Runnable launch) {
        float[] samples = new float[SAMPLES];
        try (CudaEvent start = device.newEvent(); CudaEvent end = device.newEvent()) {
            for (int sample = 0; sample < samples.length; sample++) {
                for (int fill = 0; fill < 4; fill++) {
                    busy.fillAsync(fill, scope.stream());
                }
                start.record(scope.stream());
                for (int i = 0; i < launches; i++) {
                    launch.run();
                }
                end.record(scope.stream());
                samples[sample] = end.millisSince(start) / launches;
            }
        }
        Arrays.sort(samples);
        return samples[samples.length / 2];
    }
}
