package dev.coil.engine.gpu.model;

import dev.coil.engine.gpu.CudaEvent;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a sharded prefill's time went, per GPU. Per ring step, summed over the attention blocks:
 * the copy of the neighbour's K/V shard (copy stream) and the attention of the step (compute
 * stream). A step's copy runs during the previous step's compute: the overlap shows as copy time
 * that adds nothing to the compute stream's. Per named span of the compute stream (each kind of
 * block, each phase of a Mamba block), summed over the blocks: a span's time includes what its
 * stream waited there for another GPU, so one GPU's spans against two GPUs' show where the ring
 * loses time.
 */
public final class RingTimings {

    private record Span(int device, int step, boolean copy, CudaEvent start, CudaEvent end) {
    }

    private record Named(int device, String name, CudaEvent start, CudaEvent end) {
    }

    private final int devices;
    private final List<Span> spans = new ArrayList<>();
    private final List<Named> named = new ArrayList<>();
    /** By span name, in the order first recorded: milliseconds per device. */
    private final Map<String, double[]> namedMillis = new LinkedHashMap<>();
    private final Map<String, Double> hostMillis = new LinkedHashMap<>();
    private final double[][] copyMillis;
    private final double[][] computeMillis;

    public RingTimings(int devices) {
        this.devices = devices;
        this.copyMillis = new double[devices][devices];
        this.computeMillis = new double[devices][devices];
    }

    /**
     * Event stamps of a sharded prefill, as it queues its work: when each GPU's K/V copies and
     * attention steps began and ended, named spans of its compute stream (blocks, a Mamba block's
     * phases), and the host's parts.
     */
    interface Recorder {
        void copy(int device, int step, CudaEvent start, CudaEvent end);

        void compute(int device, int step, CudaEvent start, CudaEvent end);

        void span(int device, String name, CudaEvent start, CudaEvent end);

        /** Host time of a part of the prefill (allocating, queueing, waiting, freeing). */
        void host(String name, long nanos);
    }

    Recorder recorder() {
        return new Recorder() {
            @Override
            public void copy(int device, int step, CudaEvent start, CudaEvent end) {
                spans.add(new Span(device, step, true, start, end));
            }

            @Override
            public void compute(int device, int step, CudaEvent start, CudaEvent end) {
                spans.add(new Span(device, step, false, start, end));
            }

            @Override
            public void span(int device, String name, CudaEvent start, CudaEvent end) {
                named.add(new Named(device, name, start, end));
            }

            @Override
            public void host(String name, long nanos) {
                hostMillis.merge(name, nanos / 1e6, Double::sum);
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
        for (Named span : named) {
            namedMillis.computeIfAbsent(span.name(), unused -> new double[devices])[span.device()] +=
                    span.end().millisSince(span.start());
        }
        named.clear();
    }

    /** Milliseconds GPU {@code device} spent copying the K/V shard of ring step {@code step}, over all blocks. */
    public double copyMillis(int device, int step) {
        return copyMillis[device][step];
    }

    /** Milliseconds GPU {@code device} spent attending in ring step {@code step}, over all blocks. */
    public double computeMillis(int device, int step) {
        return computeMillis[device][step];
    }

    /** The named spans recorded, in the order first recorded. */
    public List<String> spanNames() {
        return List.copyOf(namedMillis.keySet());
    }

    /** Milliseconds GPU {@code device}'s compute stream spent in spans named {@code name}, summed. */
    public double spanMillis(String name, int device) {
        double[] millis = namedMillis.get(name);
        return millis == null ? 0 : millis[device];
    }

    /** Host milliseconds of the part of the prefill named (0 where none was recorded). */
    public double hostMillis(String name) {
        return hostMillis.getOrDefault(name, 0.0);
    }

    /** The host parts recorded, in the order first recorded. */
    public List<String> hostNames() {
        return List.copyOf(hostMillis.keySet());
    }

    public int devices() {
        return devices;
    }
}
