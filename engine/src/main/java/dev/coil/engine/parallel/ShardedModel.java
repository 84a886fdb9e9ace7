package dev.coil.engine.parallel;

/**
 * A model that runs one sequence at a time with its context sharded over several devices (context
 * parallelism): the CPU's virtual devices ({@link CpuShardedModel}) or several GPUs. The serving
 * engine hands it the requests whose context is to be sharded ({@link ContextParallelMode}); the
 * scorer hands it whole prompts. It runs one sequence at a time: while a {@link ShardedRun} is open,
 * another {@link #newRun} or a {@link #score} fails at once (it would overwrite the devices' working
 * buffers) rather than wait.
 */
public interface ShardedModel extends AutoCloseable {

    /** How many devices a sequence is sharded over. */
    int deviceCount();

    /** The path name responses, logs and traces show: "ring xN". */
    default String path() {
        return "ring x" + deviceCount();
    }

    /**
     * The most positions one device's cache holds for one sequence: a longer context does not fit
     * one device and, under {@link ContextParallelMode#AUTO}, is sharded. Virtual CPU devices share
     * one memory, so theirs is unbounded ({@link Long#MAX_VALUE}).
     */
    long positionsPerDevice();

    /**
     * A fresh sequence; its prefill lays the prompt out over the devices as {@code layout} says.
     * Close it to free its shards.
     */
    ShardedRun newRun(ShardLayout layout);

    /** {@code Scorer}'s prompt logprobs for {@code ids}, the context sharded as {@code layout} says. */
    RingScore score(int[] ids, int topK, ShardLayout layout);

    @Override
    void close();
}
