package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaEvent;
import java.util.ArrayList;
import java.util.List;

/**
 * Where a sharded prefill's attention time went, per GPU and ring step, summed over the attention
 * blocks: the copy of the neighbour's K/V shard (copy stream) and the attention of the step
 * (compute stream). A step's copy runs during the previous step's compute: the overlap shows as
 * copy time that adds nothing to the compute stream's.
 */
public final class RingTimings {

    private record Span(int device, int step, boolean copy, CudaEvent start, CudaEvent end) {
    }

    private final int devices;
    private final List<Span> spans = new ArrayList<>();
    private final double[][] copyMillis;
    private final double[][] computeMillis;

    public RingTimings(int devices) {
        this.devices = devices;
        this.copyMillis = new double[devices][devices];
        this.computeMillis = new double[devices][devices];
    }

    RingAttentionBlock.Timing recorder() {
        return new RingAttentionBlock.Timing() {
            @Override
            public void copy(int device, int step, CudaEvent start, CudaEvent end) {
                spans.add(new Span(device, step, true, start, end));
            }

            @Override
            public void compute(int device, int step, CudaEvent start, CudaEvent end) {
                spans.add(new Span(device, step, false, start, end));
            }
        };
    }

    /** Reads the recorded spans' device times (the work must be done). */
    void collect() {
        for (Span span : spans) {
            double millis = span.end().millisSince(span.start());
            (span.copy() ? copyMillis : computeMillis)[span.device()][span.step()] += millis;
        }
        spans.clear();
    }

    /** Milliseconds GPU {@code device} spent copying the K/V shard of ring step {@code step}, over all blocks. */
    public double copyMillis(int device, int step) {
        return copyMillis[device][step];
    }

    /** Milliseconds GPU {@code device} spent attending in ring step {@code step}, over all blocks. */
    public double computeMillis(int device, int step) {
        return computeMillis[device][step];
    }

    public int devices() {
        return devices;
    }
}
