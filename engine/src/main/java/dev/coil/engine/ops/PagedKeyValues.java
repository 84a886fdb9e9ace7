package dev.coil.engine.ops;

import dev.coil.engine.load.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The paged K/V storage of one attention layer, shared by every sequence:
 * keys, values: [blocks, blockSize, kvHeads, headDim], F32 or BF16 (little-endian), off-heap.
 * A sequence owns a block table; its position p lives in block table[p / blockSize], row p % blockSize.
 * Which blocks belong to whom is the cache's business ({@code cache.BlockPool}); this class only
 * moves rows in and out.
 */
public final class PagedKeyValues {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final MemorySegment keys;
    private final MemorySegment values;
    private final DType dtype;
    private final int blocks;
    private final int blockSize;
    private final int kvHeads;
    private final int headDim;

    public PagedKeyValues(Arena arena, DType dtype, int blocks, int blockSize, int kvHeads, int headDim) {
        if (dtype != DType.F32 && dtype != DType.BF16) {
            throw new IllegalArgumentException("KV cache dtype must be F32 or BF16, got " + dtype);
        }
        this.dtype = dtype;
        this.blocks = blocks;
        this.blockSize = blockSize;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        long bytes = Math.max(1, (long) blocks * blockSize * kvHeads * headDim * dtype.bytes());
        this.keys = arena.allocate(bytes, 64);
        this.values = arena.allocate(bytes, 64);
    }

    /** Bytes one block takes for keys and values together. */
    public static long blockBytes(DType dtype, int blockSize, int kvHeads, int headDim) {
        return 2L * blockSize * kvHeads * headDim * dtype.bytes();
    }

    public MemorySegment keys() {
        return keys;
    }

    public MemorySegment values() {
        return values;
    }

    public DType dtype() {
        return dtype;
    }

    public int blocks() {
        return blocks;
    }

    public int blockSize() {
        return blockSize;
    }

    public int kvHeads() {
        return kvHeads;
    }

    public int headDim() {
        return headDim;
    }

    /** Elements in one cached position: kvHeads · headDim. */
    public int rowWidth() {
        return kvHeads * headDim;
    }

    /** Byte offset of position {@code position} of a sequence with block table {@code table}. */
    public long rowOffset(int[] table, int position) {
        long row = (long) table[position / blockSize] * blockSize + position % blockSize;
        return row * rowWidth() * dtype.bytes();
    }

    /**
     * Stores k, v ([tokens, kvHeads, headDim]) at positions start .. start + tokens, rounding to
     * bf16 (nearest even) when the cache is bf16. The table must already cover those positions.
     */
    public void write(int[] table, int start, int tokens, float[] k, float[] v) {
        int width = rowWidth();
        for (int t = 0; t < tokens; t++) {
            long offset = rowOffset(table, start + t);
            int source = t * width;
            if (dtype == DType.F32) {
                MemorySegment.copy(k, source, keys, F32, offset, width);
                MemorySegment.copy(v, source, values, F32, offset, width);
            } else {
                for (int i = 0; i < width; i++) {
                    keys.set(U16, offset + 2L * i, Matrix.floatToBf16(k[source + i]));
                    values.set(U16, offset + 2L * i, Matrix.floatToBf16(v[source + i]));
                }
            }
        }
    }

    /** Reads positions from .. to into keysOut, valuesOut ([to - from, kvHeads, headDim] f32). */
    public void gather(int[] table, int from, int to, float[] keysOut, float[] valuesOut) {
        int width = rowWidth();
        short[] row = dtype == DType.BF16 ? new short[width] : null;
        for (int position = from; position < to; position++) {
            long offset = rowOffset(table, position);
            int target = (position - from) * width;
            if (dtype == DType.F32) {
                MemorySegment.copy(keys, F32, offset, keysOut, target, width);
                MemorySegment.copy(values, F32, offset, valuesOut, target, width);
            } else {
                MemorySegment.copy(keys, U16, offset, row, 0, width);
                widen(row, keysOut, target, width);
                MemorySegment.copy(values, U16, offset, row, 0, width);
                widen(row, valuesOut, target, width);
            }
        }
    }

    /** dst[at + i] = bf16 bits[i] as f32 (the top half of an f32), array to array so the JIT vectorises it. */
    private static void widen(short[] bits, float[] dst, int at, int count) {
        for (int i = 0; i < count; i++) {
            dst[at + i] = Float.intBitsToFloat(bits[i] << 16);
        }
    }

    /** Copies the first {@code rows} positions of block {@code source} into block {@code target} (copy-on-write). */
    public void copyBlock(int source, int target, int rows) {
        copyBlock(this, source, this, target, rows);
    }

    /** Copies the first {@code rows} positions of one block to another, between stores of the same layout. */
    public static void copyBlock(PagedKeyValues from, int source, PagedKeyValues to, int target, int rows) {
        long rowBytes = (long) from.rowWidth() * from.dtype.bytes();
        long bytes = rows * rowBytes;
        MemorySegment.copy(from.keys, source * from.blockSize * rowBytes, to.keys, target * to.blockSize * rowBytes,
                bytes);
        MemorySegment.copy(from.values, source * from.blockSize * rowBytes, to.values,
                target * to.blockSize * rowBytes, bytes);
    }

    /** Positions [from, to) of a sequence as raw rows in this store's dtype ([to - from, rowBytes] each). */
    public byte[][] exportRows(int[] table, int from, int to) {
        int rowBytes = rowWidth() * dtype.bytes();
        byte[] keyRows = new byte[(to - from) * rowBytes];
        byte[] valueRows = new byte[keyRows.length];
        for (int position = from; position < to; position++) {
            long offset = rowOffset(table, position);
            MemorySegment.copy(keys, ValueLayout.JAVA_BYTE, offset, keyRows, (position - from) * rowBytes, rowBytes);
            MemorySegment.copy(values, ValueLayout.JAVA_BYTE, offset, valueRows, (position - from) * rowBytes,
                    rowBytes);
        }
        return new byte[][] {keyRows, valueRows};
    }

    /** Writes rows from {@link #exportRows} back at positions [from, from + rows). */
    public void importRows(int[] table, int from, byte[][] rows) {
        int rowBytes = rowWidth() * dtype.bytes();
        int count = rows[0].length / rowBytes;
        for (int r = 0; r < count; r++) {
            long offset = rowOffset(table, from + r);
            MemorySegment.copy(rows[0], r * rowBytes, keys, ValueLayout.JAVA_BYTE, offset, rowBytes);
            MemorySegment.copy(rows[1], r * rowBytes, values, ValueLayout.JAVA_BYTE, offset, rowBytes);
        }
    }
}
