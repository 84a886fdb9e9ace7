package dev.coil.engine.runner;

import dev.coil.engine.cache.CacheSizing;
import dev.coil.engine.cache.HostStateStore;
import dev.coil.engine.cache.StateStore;
import dev.coil.engine.model.Batch;
import dev.coil.engine.model.HybridModel;
import dev.coil.engine.model.SequenceState;
import dev.coil.engine.ops.Ops;
import java.util.List;

/** Steps on the CPU: {@link HybridModel#forward(Ops, Batch)} with the cache in host memory. */
public final class CpuBackend implements Backend {

    private final HybridModel model;
    private final Ops ops;

    public CpuBackend(HybridModel model, Ops ops) {
        this.model = model;
        this.ops = ops;
    }

    @Override
    public String description() {
        return ops.name();
    }

    @Override
    public boolean batchInvariant() {
        return ops.batchInvariant();
    }

    @Override
    public long freeMemoryBytes() {
        return CacheBudget.freeMemoryBytes();
    }

    @Override
    public StateStore newStateStore(CacheSizing sizing) {
        return new HostStateStore(sizing, model.config().blocks(), model::newLayerStates);
    }

    @Override
    public SequenceState newSequence(StateStore store, int slot) {
        HostStateStore host = (HostStateStore) store;
        return model.newSequence(host.keyValues(), host.slotStates(slot), slot);
    }

    @Override
    public List<Batch.Output> forward(Batch batch) {
        return model.forward(ops, batch).stream().map(Batch.Output::ofLogits).toList();
    }

    @Override
    public void close() {
    }
}
