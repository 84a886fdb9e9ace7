package dev.coil.engine.parallel;

import dev.coil.engine.runner.Generation;
import java.util.List;

/** A generation whose prompt was prefilled sharded over virtual devices and decoded over the sharded context. */
public record RingGeneration(Generation generation, Sharding sharding) {

    /** The execution paths taken, as benchmarks and logs name them: "ring xN". */
    public List<String> paths() {
        return List.of("ring x" + sharding.devices());
    }
}
