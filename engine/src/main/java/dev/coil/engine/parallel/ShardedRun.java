package dev.coil.engine.parallel;

import dev.coil.engine.runner.Generator;

/**
 * One sequence of a {@link ShardedModel}: {@link #prefill} once with the whole prompt (sharded),
 * then {@link #decode} one generated token at a time over the sharded context. Each returns the
 * logits [vocab] of its last position, as {@link Generator.Steps} asks.
 */
public interface ShardedRun extends Generator.Steps, AutoCloseable {

    /** How the prompt was laid out over the devices; valid after {@link #prefill}. */
    Sharding sharding();

    /** Frees the sequence's shards and states. */
    @Override
    void close();
}
