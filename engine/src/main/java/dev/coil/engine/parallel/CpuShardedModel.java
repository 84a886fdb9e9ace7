package dev.coil.engine.parallel;

import dev.coil.engine.runner.LoadedModel;
import java.util.concurrent.Semaphore;

/** {@link ShardedModel} on N virtual CPU devices: {@link ContextParallelModel} over {@link VirtualDevices}. */
public final class CpuShardedModel implements ShardedModel {

    private final LoadedModel loaded;
    private final VirtualDevices devices;
    private final ContextParallelModel model;
    private final Semaphore running = new Semaphore(1);

    /** The devices stay the caller's: closing this model does not close them. */
    public CpuShardedModel(LoadedModel loaded, VirtualDevices devices) {
        this.loaded = loaded;
        this.devices = devices;
        this.model = new ContextParallelModel(loaded.model(), devices);
    }

    @Override
    public int deviceCount() {
        return devices.count();
    }

    @Override
    public long positionsPerDevice() {
        return Long.MAX_VALUE;
    }

    @Override
    public ShardedRun newRun(ShardLayout layout) {
        if (!running.tryAcquire()) {
            throw new IllegalStateException("a sharded model runs one sequence at a time; close the open run first");
        }
        return new ShardedRun() {
            private ShardedSequence sequence;
            private boolean closed;

            @Override
            public float[] prefill(int[] prompt) {
                sequence = model.newSequence(layout, prompt.length);
                return model.lastLogits(sequence, model.prefill(sequence, prompt));
            }

            @Override
            public float[] decode(int token) {
                if (sequence == null) {
                    throw new IllegalStateException("decode continues a prefilled sequence; prefill it first");
                }
                return model.decode(sequence, token);
            }

            @Override
            public Sharding sharding() {
                if (sequence == null) {
                    throw new IllegalStateException("a sequence is laid out by its prefill; prefill it first");
                }
                return sequence.sharding();
            }

            @Override
            public void close() {
                if (!closed) {
                    closed = true;
                    sequence = null;
                    running.release();
                }
            }
        };
    }

    @Override
    public RingScore score(int[] ids, int topK, ShardLayout layout) {
        if (!running.tryAcquire()) {
            throw new IllegalStateException("a sharded model runs one sequence at a time; close the open run first");
        }
        try {
            return new ContextParallelScorer(loaded, devices, layout).score(ids, topK);
        } finally {
            running.release();
        }
    }

    @Override
    public void close() {
    }
}
