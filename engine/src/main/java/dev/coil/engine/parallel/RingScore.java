package dev.coil.engine.parallel;

import dev.coil.engine.runner.ScoreResult;
import java.util.List;

/** Prompt logprobs computed with the context sharded over virtual devices, and how it was sharded. */
public record RingScore(ScoreResult result, Sharding sharding) {

    /** The execution paths taken, as benchmarks and logs name them: "ring xN". */
    public List<String> paths() {
        return List.of("ring x" + sharding.devices());
    }
}
