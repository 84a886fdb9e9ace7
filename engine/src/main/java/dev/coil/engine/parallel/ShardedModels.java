package dev.coil.engine.parallel;

import dev.coil.engine.gpu.model.GpuShardedModel;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.ScanPrecision;

/** Opens the {@link ShardedModel} that {@code --devices} names: virtual CPU devices or several GPUs. */
public final class ShardedModels {

    private ShardedModels() {
    }

    /**
     * The sharded model over {@code devices} (resolved, at least two): cpu:N gives N virtual CPU
     * devices sharing {@code threads}, several CUDA devices give one GPU each. Close it to free
     * them.
     *
     * @throws IllegalArgumentException naming --devices when they are fewer than two, unresolved,
     *                                  or CUDA devices that cannot be opened (no GPU, no kernels)
     */
    public static ShardedModel open(LoadedModel loaded, Devices devices, int threads) {
        return open(loaded, devices, threads, ScanPrecision.F32);
    }

    /** As above, GPU shards scanning with {@code scanPrecision} (the CPU's always scan in f32). */
    public static ShardedModel open(LoadedModel loaded, Devices devices, int threads, ScanPrecision scanPrecision) {
        if (devices.kind() == Devices.Kind.AUTO) {
            throw new IllegalArgumentException("--devices auto must be resolved before a sharded model is opened");
        }
        if (devices.count() < 2) {
            throw new IllegalArgumentException("context parallelism needs at least two devices (--devices cpu:N with"
                    + " N >= 2, or several cuda devices); got --devices " + devices);
        }
        if (devices.isCuda()) {
            try {
                return GpuShardedModel.open(loaded, devices, scanPrecision.kernelPrecision());
            } catch (RuntimeException | LinkageError e) {
                throw new IllegalArgumentException("context parallelism over CUDA devices (--devices " + devices
                        + ") could not start: " + e.getMessage() + "; use --devices cpu:N, or --context-parallel"
                        + " never to serve on cuda:" + devices.ordinals().get(0) + " alone", e);
            }
        }
        VirtualDevices virtual = VirtualDevices.cpu(devices.count(), Math.max(1, threads / devices.count()));
        return new OwningDevices(new CpuShardedModel(loaded, virtual), virtual);
    }

    /**
     * What the serving engine and the scorer shard: nothing for --context-parallel never or fewer
     * than two devices, else {@link #open}'s model with the mode and layout.
     */
    public static ContextParallelism contextParallelism(LoadedModel loaded, Devices devices, int threads,
            ContextParallelMode mode, ShardLayout layout) {
        return contextParallelism(loaded, devices, threads, mode, layout, ScanPrecision.F32);
    }

    /** As above, GPU shards scanning with {@code scanPrecision}. */
    public static ContextParallelism contextParallelism(LoadedModel loaded, Devices devices, int threads,
            ContextParallelMode mode, ShardLayout layout, ScanPrecision scanPrecision) {
        if (mode == ContextParallelMode.NEVER || devices.count() < 2) {
            return new ContextParallelism(null, mode, layout);
        }
        return new ContextParallelism(open(loaded, devices, threads, scanPrecision), mode, layout);
    }

    /** A sharded model that also closes the virtual devices it was opened over. */
    private record OwningDevices(ShardedModel model, VirtualDevices devices) implements ShardedModel {

        @Override
        public int deviceCount() {
            return model.deviceCount();
        }

        @Override
        public String path() {
            return model.path();
        }

        @Override
        public long positionsPerDevice() {
            return model.positionsPerDevice();
        }

        @Override
        public ShardedRun newRun(ShardLayout layout) {
            return model.newRun(layout);
        }

        @Override
        public RingScore score(int[] ids, int topK, ShardLayout layout) {
            return model.score(ids, topK, layout);
        }

        @Override
        public void close() {
            try {
                model.close();
            } finally {
                devices.close();
            }
        }
    }
}
