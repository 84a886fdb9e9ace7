package dev.coil.engine.parallel;

import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * Which device holds which positions of a prompt of {@code tokens} tokens. The prompt is cut into
 * contiguous chunks, in sequence order 0 .. chunkCount-1 (the chain the Mamba state passes along);
 * each chunk belongs to one device, and a device's rows are its chunks in sequence order. Chunks
 * differ in length by at most one token; when the prompt has fewer tokens than chunks, some are
 * empty (and so may be a device).
 */
public final class Sharding {

    private final ShardLayout layout;
    private final int devices;
    private final int tokens;
    private final int[] chunkStart; // [chunkCount + 1]: chunk k is positions [chunkStart[k], chunkStart[k + 1])
    private final int[] owner; // [chunkCount]
    private final int[][] chunksOf; // per device: its chunks, ascending
    private final int[][] positions; // per device: the global position of each of its rows

    public Sharding(ShardLayout layout, int devices, int tokens) {
        if (devices < 1) {
            throw new IllegalArgumentException("context parallelism needs at least one device, got " + devices);
        }
        if (tokens < 1) {
            throw new IllegalArgumentException("a sharded prompt needs at least one token, got " + tokens);
        }
        this.layout = layout;
        this.devices = devices;
        this.tokens = tokens;
        int chunks = layout == ShardLayout.ZIGZAG ? 2 * devices : devices;
        this.chunkStart = new int[chunks + 1];
        this.owner = new int[chunks];
        for (int k = 0; k <= chunks; k++) {
            chunkStart[k] = (int) ((long) k * tokens / chunks);
        }
        for (int k = 0; k < chunks; k++) {
            owner[k] = layout == ShardLayout.ZIGZAG && k >= devices ? chunks - 1 - k : k;
        }
        this.chunksOf = new int[devices][];
        this.positions = new int[devices][];
        for (int device = 0; device < devices; device++) {
            final int d = device;
            chunksOf[d] = IntStream.range(0, chunks).filter(k -> owner[k] == d).toArray();
            positions[d] = Arrays.stream(chunksOf[d])
                    .flatMap(k -> IntStream.range(chunkStart[k], chunkStart[k + 1]))
                    .toArray();
        }
    }

    public ShardLayout layout() {
        return layout;
    }

    public int devices() {
        return devices;
    }

    public int tokens() {
        return tokens;
    }

    public int chunkCount() {
        return owner.length;
    }

    /** First position of chunk k. */
    public int chunkStart(int chunk) {
        return chunkStart[chunk];
    }

    public int chunkLength(int chunk) {
        return chunkStart[chunk + 1] - chunkStart[chunk];
    }

    /** The device holding chunk k. */
    public int owner(int chunk) {
        return owner[chunk];
    }

    /** The chunks of {@code device}, in sequence order. */
    public int[] chunksOf(int device) {
        return chunksOf[device].clone();
    }

    /** How many positions {@code device} holds. */
    public int rows(int device) {
        return positions[device].length;
    }

    /** The most positions any device holds. */
    public int maxRows() {
        int max = 0;
        for (int[] rows : positions) {
            max = Math.max(max, rows.length);
        }
        return max;
    }

    /** The global position of each row of {@code device}, ascending. */
    public int[] positions(int device) {
        return positions[device].clone();
    }

    /** The row of {@code device} at which chunk k begins (k must belong to it). */
    public int firstRow(int device, int chunk) {
        if (owner[chunk] != device) {
            throw new IllegalArgumentException("chunk " + chunk + " belongs to device " + owner[chunk] + ", not "
                    + device);
        }
        int row = 0;
        for (int k : chunksOf[device]) {
            if (k == chunk) {
                return row;
            }
            row += chunkLength(k);
        }
        throw new IllegalStateException("unreachable");
    }

    /** The device holding position p, and the row it sits in there: {device, row}. */
    public int[] locate(int position) {
        if (position < 0 || position >= tokens) {
            throw new IndexOutOfBoundsException("position " + position + " outside [0, " + tokens + ")");
        }
        for (int k = 0; k < owner.length; k++) {
            if (position < chunkStart[k + 1]) {
                return new int[] {owner[k], firstRow(owner[k], k) + position - chunkStart[k]};
            }
        }
        throw new IllegalStateException("unreachable");
    }

    @Override
    public String toString() {
        return layout + " over " + devices + " devices, " + tokens + " tokens in " + owner.length + " chunks";
    }
}
