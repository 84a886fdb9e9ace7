package dev.coil.engine.load;

/**
 * Where a checkpoint's tensor bytes are read from once it is open.
 */
public enum WeightStorage {

    /**
     * In place, from the memory-mapped safetensors files: opening costs nothing and the page cache is
     * shared with other processes. What a GPU wants, which reads each weight once to upload it.
     */
    MAPPED,

    /**
     * Copied at open into anonymous memory on huge pages where the OS offers them
     * ({@link dev.coil.engine.ops.HugePageArena}): what the CPU wants, whose decode steps stream every
     * weight each token and read them faster so.
     */
    MEMORY
}
