package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;

/**
 * How many blocks take one row of logits together in the kernels that split a row over a thread-block
 * cluster (row_blocks.cuh: the sampling draw and the logprobs records): on sm_90 a power of two up to
 * {@value #LARGEST_BLOCKS_PER_ROW}, elsewhere one.
 */
final class RowClusters {

    /** The most blocks a row by default: the largest portable thread-block cluster. */
    static final int MOST_BLOCKS_PER_ROW = 8;

    /** The most blocks a row may be given: an H100's largest (non-portable) cluster. */
    static final int LARGEST_BLOCKS_PER_ROW = 16;

    private final boolean clusters;
    private final int multiprocessors;

    /** For {@code kernel}, which it lets launch in clusters of more than 8 where clusters can be launched. */
    RowClusters(KernelModule module, Kernel kernel) {
        this.clusters = module.clusterLaunches();
        this.multiprocessors = module.multiprocessors();
        if (clusters) {
            kernel.allowNonPortableClusters();
        }
    }

    /**
     * The most blocks a row (a power of two up to {@value #MOST_BLOCKS_PER_ROW}) that leave each block of
     * {@code rows} rows a multiprocessor of its own (two rows of 64 fill 128 of an H100's 132).
     */
    int blocksPerRow(int rows) {
        int blocks = 1;
        while (blocks < MOST_BLOCKS_PER_ROW && (long) rows * blocks * 2 <= multiprocessors) {
            blocks *= 2;
        }
        return largestAllowed(blocks);
    }

    /** The largest number of blocks a row allowed here that is at most {@code wanted} (at least 1). */
    int largestAllowed(int wanted) {
        if (!clusters) {
            return 1;
        }
        int blocks = 1;
        while (blocks * 2 <= Math.min(wanted, LARGEST_BLOCKS_PER_ROW)) {
            blocks *= 2;
        }
        return blocks;
    }

    /** Whether {@code blocks} blocks may take one row here. */
    boolean allows(int blocks) {
        return blocks >= 1 && largestAllowed(blocks) == blocks;
    }

    /** Refuses a number of blocks a row not allowed here. */
    void require(int blocks) {
        if (!allows(blocks)) {
            throw new IllegalArgumentException(blocks + " blocks a row; this device takes "
                    + (clusters ? "1, 2, 4, 8 or 16" : "1"));
        }
    }
}
